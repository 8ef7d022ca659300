//! Serving figures per endpoint and version that deployments judge a new version by: each
//! process counts answers, 5xx errors and latencies (in fixed buckets) and flushes them to
//! `serving_stats` every refresh, so a controller in any process sees the whole fleet's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::{AnyPool, Row};

use super::Error;

/// Upper bounds (ms) of the latency buckets; the last bucket is everything slower.
pub const BOUNDS_MS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Counts over some interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    /// Requests per latency bucket (`BOUNDS_MS.len() + 1` entries).
    pub buckets: Vec<u64>,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The share of answers that were server errors.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// The upper bound of the bucket holding the q-quantile of latency (∞ past the last).
    pub fn latency_quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let wanted = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return BOUNDS_MS.get(i).copied().unwrap_or(f64::INFINITY);
            }
        }
        f64::INFINITY
    }
}

/// One process's counts since its last flush.
#[derive(Default)]
pub struct Recorder {
    pending: Mutex<HashMap<(String, u32), Stats>>,
}

impl Recorder {
    /// Records an answer (`error`: a 5xx status).
    pub fn record(&self, endpoint: &str, version: u32, took: Duration, error: bool) {
        let ms = took.as_secs_f64() * 1000.0;
        let bucket = BOUNDS_MS.partition_point(|bound| *bound < ms);
        let mut pending = self.pending.lock().expect("not poisoned");
        let stats = pending.entry((endpoint.to_owned(), version)).or_default();
        if stats.buckets.is_empty() {
            stats.buckets = vec![0; BOUNDS_MS.len() + 1];
        }
        stats.requests += 1;
        stats.errors += u64::from(error);
        stats.buckets[bucket] += 1;
    }

    /// Writes the counts since the last flush, if any (and then forgets rows older than a day).
    pub async fn flush(&self, pool: &AnyPool, process: &str) -> Result<(), Error> {
        let drained: Vec<((String, u32), Stats)> =
            self.pending.lock().expect("not poisoned").drain().collect();
        if drained.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        for ((endpoint, version), stats) in drained {
            sqlx::query(
                "INSERT INTO serving_stats (endpoint, version, process, at, requests, errors, buckets) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (endpoint, version, process, at) DO NOTHING",
            )
            .bind(&endpoint)
            .bind(i64::from(version))
            .bind(process)
            .bind(now)
            .bind(stats.requests as i64)
            .bind(stats.errors as i64)
            .bind(serde_json::to_string(&stats.buckets).expect("numbers serialise"))
            .execute(pool)
            .await?;
        }
        sqlx::query("DELETE FROM serving_stats WHERE at < $1")
            .bind(now - 86_400_000)
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// The fleet's counts for a version of an endpoint since `since` (ms).
pub async fn since(
    pool: &AnyPool,
    endpoint: &str,
    version: u32,
    since: i64,
) -> Result<Stats, Error> {
    let rows = sqlx::query(
        "SELECT requests, errors, buckets FROM serving_stats \
         WHERE endpoint = $1 AND version = $2 AND at >= $3",
    )
    .bind(endpoint)
    .bind(i64::from(version))
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut total = Stats::default();
    for row in rows {
        let buckets: String = row.try_get("buckets")?;
        total.add(&Stats {
            requests: row.try_get::<i64, _>("requests")? as u64,
            errors: row.try_get::<i64, _>("errors")? as u64,
            buckets: serde_json::from_str(&buckets).unwrap_or_default(),
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let recorder = Recorder::default();
        for _ in 0..98 {
            recorder.record("e", 1, Duration::from_millis(3), false);
        }
        recorder.record("e", 1, Duration::from_millis(150), true);
        recorder.record("e", 1, Duration::from_millis(150), true);
        let stats = recorder.pending.lock().unwrap()[&("e".to_owned(), 1)].clone();
        assert_eq!((stats.requests, stats.errors), (100, 2));
        assert_eq!(stats.latency_quantile_ms(0.5), 5.0);
        assert_eq!(stats.latency_quantile_ms(0.98), 5.0);
        assert_eq!(stats.latency_quantile_ms(0.99), 200.0);
        assert!((stats.error_rate() - 0.02).abs() < 1e-12);
    }
}
