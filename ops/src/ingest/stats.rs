//! What a stream has taken, for operators (`GET /ingest/stats`) and the benchmark: records and
//! bytes acknowledged, puts refused, bytes not yet delivered, objects delivered, and how long
//! puts waited for their fsync (a histogram of exponential buckets, 50 µs to about 7 minutes,
//! whose quantiles are read as their bucket's upper bound).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

const BUCKETS: usize = 24;
const FIRST_US: f64 = 50.0;

/// A stream's counters, shared by its puts.
#[derive(Debug, Default)]
pub(super) struct Counters {
    records: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
    duplicates: AtomicU64,
    waits: [AtomicU64; BUCKETS],
}

impl Counters {
    /// A put acknowledged after `waited`.
    pub fn accepted(&self, records: usize, bytes: u64, waited: Duration) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let us = waited.as_secs_f64() * 1e6;
        let bucket = if us <= FIRST_US {
            0
        } else {
            ((us / FIRST_US).log2().ceil() as usize).min(BUCKETS - 1)
        };
        self.waits[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A put refused (a full buffer, a failed log).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A retried request answered without writing again (its request id was seen).
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound of the bucket holding quantile `q` of the waits, in ms (0 when none).
    fn quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .waits
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return FIRST_US * 2f64.powi(i as i32) / 1000.0;
            }
        }
        f64::INFINITY
    }

    pub fn snapshot(
        &self,
        stream: &str,
        buffered_bytes: u64,
        objects_delivered: u64,
    ) -> StreamStats {
        StreamStats {
            stream: stream.to_owned(),
            records_accepted: self.records.load(Ordering::Relaxed),
            bytes_accepted: self.bytes.load(Ordering::Relaxed),
            puts_refused: self.refused.load(Ordering::Relaxed),
            retries_deduplicated: self.duplicates.load(Ordering::Relaxed),
            buffered_bytes,
            objects_delivered,
            ack_p50_ms: self.quantile_ms(0.5),
            ack_p99_ms: self.quantile_ms(0.99),
        }
    }
}

/// A stream's figures since the process started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStats {
    pub stream: String,
    pub records_accepted: u64,
    pub bytes_accepted: u64,
    pub puts_refused: u64,
    /// Retried requests (a request id seen before) answered without writing again.
    pub retries_deduplicated: u64,
    /// Accepted and not yet in the lake.
    pub buffered_bytes: u64,
    pub objects_delivered: u64,
    /// How long puts waited to be acknowledged (their fsync), median and 99th percentile,
    /// as the upper bound of their histogram bucket.
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_exponential_buckets() {
        let counters = Counters::default();
        for _ in 0..98 {
            counters.accepted(500, 150_000, Duration::from_micros(700));
        }
        counters.accepted(500, 150_000, Duration::from_millis(30));
        counters.accepted(500, 150_000, Duration::from_millis(30));
        counters.refused();
        counters.duplicate();
        let stats = counters.snapshot("t", 7, 3);
        assert_eq!(stats.retries_deduplicated, 1);
        assert_eq!(stats.records_accepted, 50_000);
        assert_eq!(stats.bytes_accepted, 15_000_000);
        assert_eq!(stats.puts_refused, 1);
        assert_eq!(
            stats.ack_p50_ms, 0.8,
            "700 µs is in the bucket up to 800 µs"
        );
        assert_eq!(
            stats.ack_p99_ms, 51.2,
            "30 ms is in the bucket up to 51.2 ms"
        );
        assert_eq!(Counters::default().snapshot("t", 0, 0).ack_p99_ms, 0.0);
    }
}
