//! The landings generator: what a Firehose delivery stream fed by a fleet of air-quality
//! devices lands in an object store, deterministic per seed.
//!
//! Keys are `<prefix>/YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz` by arrival hour
//! (UTC); each object is GZIP of JSON records, newline-delimited or back to back (`}{`,
//! Firehose's default). Records carry daily and weekly seasonality, a trend, noise and gaps; about
//! 2% arrive hours late; firmware 2.0 adds a `noise_db` field part-way through; a small share
//! is malformed; and a few `processing-failed` envelopes land under the error prefix.
//!
//! The period ends at midnight after its last day: what would arrive later has not landed yet.
//! Day by day generation is therefore seamless: days `0..30` and then days `30..31` (with
//! `from_day`) write the same records as days `0..31` at once. A [`Shift`] changes the air from
//! a given day on (a wildfire's smoke), for drift to find.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::io::Write;

use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::json;

use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct LandingsSpec {
    /// Where records land (`landing/telemetry`).
    pub prefix: LakeKey,
    /// Where processing-failed envelopes land (`landing/errors`).
    pub error_prefix: LakeKey,
    pub stream: String,
    pub devices: u32,
    pub days: u32,
    pub seed: u64,
    /// First day (UTC).
    pub start: NaiveDate,
    /// Records back to back (`}{`) instead of one per line.
    pub concat: bool,
    /// Minutes between two readings of a device.
    pub reading_minutes: u32,
    /// Minutes of arrivals buffered into one object.
    pub buffer_minutes: u32,
    /// Objects flushed before this day were written by an earlier run: simulate, do not write.
    pub from_day: u32,
    /// A change in the data from a day on.
    pub shift: Option<Shift>,
}

/// Smoke from a day on: particulate matter multiplied by `factor` (on top of its usual cycles).
#[derive(Debug, Clone, Copy)]
pub struct Shift {
    pub from_day: u32,
    pub factor: f64,
}

impl LandingsSpec {
    /// A fleet's landings with the usual settings: 5-minute readings, 15-minute buffers.
    pub fn new(devices: u32, days: u32, seed: u64, start: NaiveDate) -> Self {
        Self {
            prefix: LakeKey::parse("landing/telemetry").expect("valid key"),
            error_prefix: LakeKey::parse("landing/errors").expect("valid key"),
            stream: "aq-telemetry".into(),
            devices,
            days,
            seed,
            start,
            concat: false,
            reading_minutes: 5,
            buffer_minutes: 15,
            from_day: 0,
            shift: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenerateReport {
    pub objects: u64,
    pub error_objects: u64,
    pub records: u64,
    pub malformed_records: u64,
    pub late_records: u64,
    pub envelopes: u64,
    pub bytes: u64,
}

/// One device's fixed traits.
struct Device {
    id: String,
    site: u32,
    lat: f64,
    lon: f64,
    elevation_m: i64,
    base_pm25: f64,
    trend_per_day: f64,
    utc_offset_hours: f64,
    upgrade_day: u32,
    shift: Option<Shift>,
    rng: ChaCha8Rng,
    outage_until: Option<DateTime<Utc>>,
}

impl Device {
    fn new(index: u32, spec: &LandingsSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(
            spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(index),
        );
        Self {
            id: format!("aq-{index:04}"),
            site: index % 12,
            lat: 40.30 + rng.random_range(0.0..0.25),
            lon: -3.85 + rng.random_range(0.0..0.30),
            elevation_m: rng.random_range(550..720),
            base_pm25: rng.random_range(6.0..22.0),
            trend_per_day: rng.random_range(-0.004..0.008),
            utc_offset_hours: 2.0,
            upgrade_day: spec.days / 2 + rng.random_range(0..=spec.days / 6),
            shift: spec.shift,
            rng,
            outage_until: None,
        }
    }

    /// A standard normal draw.
    fn gauss(&mut self) -> f64 {
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }

    /// One reading at `at`, day `day` of the period; None while the device is offline.
    fn reading(&mut self, at: DateTime<Utc>, day: u32) -> Option<serde_json::Value> {
        if self.outage_until.is_some_and(|until| at < until) {
            return None;
        }
        if self.rng.random_bool(0.0004) {
            self.outage_until = Some(at + Duration::minutes(self.rng.random_range(60..480)));
            return None;
        }
        let local_hour =
            (f64::from(at.hour()) + f64::from(at.minute()) / 60.0 + self.utc_offset_hours)
                .rem_euclid(24.0);
        let weekend = at.weekday().number_from_monday() >= 6;
        let rush = (-((local_hour - 8.5) / 1.5).powi(2)).exp()
            + 0.8 * (-((local_hour - 19.0) / 2.0).powi(2)).exp();
        let weekly = if weekend { 0.72 } else { 1.0 };
        let trend = 1.0 + self.trend_per_day * f64::from(day);
        let smoke = self
            .shift
            .filter(|shift| day >= shift.from_day)
            .map_or(1.0, |shift| shift.factor);
        let pm25 = (self.base_pm25
            * (0.7 + 0.9 * rush)
            * weekly
            * trend
            * smoke
            * (1.0 + 0.12 * self.gauss()))
        .max(0.5);
        let pm10 = pm25 * (1.55 + 0.1 * self.gauss()) + 2.0;
        let no2 = (12.0 + 28.0 * rush * weekly + 3.0 * self.gauss()).max(1.0);
        let sun = ((local_hour - 9.0) / 24.0 * 2.0 * PI).sin();
        let o3 = (55.0 + 30.0 * sun - 0.4 * no2 + 4.0 * self.gauss()).max(2.0);
        let temperature = 16.0 + 7.0 * sun + 0.05 * f64::from(day) + 0.8 * self.gauss();
        let humidity = (62.0 - 2.1 * (temperature - 16.0) + 4.0 * self.gauss()).clamp(8.0, 100.0);
        let status = match self.rng.random_range(0..1000) {
            0..5 => "maintenance",
            5..30 => "degraded",
            _ => "ok",
        };
        let upgraded = day >= self.upgrade_day;
        let mut record = json!({
            "device_id": self.id,
            "ts": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "pm25": round(pm25, 2),
            "pm10": round(pm10, 2),
            "no2": round(no2, 2),
            "o3": round(o3, 2),
            "temperature": round(temperature, 2),
            "humidity": round(humidity, 1),
            "location": {"lat": round(self.lat, 5), "lon": round(self.lon, 5), "site": format!("site-{:02}", self.site), "elevation_m": self.elevation_m},
            "status": status,
            "firmware": if upgraded { "2.0.1" } else { "1.8.3" },
        });
        if upgraded {
            record["noise_db"] = json!(round(48.0 + 14.0 * rush + 2.0 * self.gauss(), 1));
        }
        Some(record)
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10_f64.powi(digits);
    (value * scale).round() / scale
}

/// One record on its way: when it arrives, its line, and whether it is malformed or late.
struct Arriving {
    at: DateTime<Utc>,
    device: String,
    line: String,
    malformed: bool,
    late: bool,
}

/// Records arriving in one buffer window.
type Buffers = BTreeMap<DateTime<Utc>, Vec<Arriving>>;

/// The spec's bounds: positive sizes, a first day inside the period.
fn check(spec: &LandingsSpec) -> Result<()> {
    if spec.devices == 0 || spec.days == 0 || spec.reading_minutes == 0 || spec.buffer_minutes == 0
    {
        return Err(Error::InvalidArgument {
            field: "generator",
            reason: "devices, days and intervals must be positive".into(),
        });
    }
    if spec.from_day >= spec.days {
        return Err(Error::InvalidArgument {
            field: "from_day",
            reason: format!(
                "day {} is past the period's {} days",
                spec.from_day, spec.days
            ),
        });
    }
    Ok(())
}

/// Writes the landings; returns what was written.
pub async fn generate_landings(lake: &Lake, spec: &LandingsSpec) -> Result<GenerateReport> {
    check(spec)?;
    let mut devices: Vec<Device> = (0..spec.devices).map(|i| Device::new(i, spec)).collect();
    let mut object_rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed_0b1e);
    let mut report = GenerateReport::default();
    let mut buffers: Buffers = BTreeMap::new();
    let start = spec.start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let write_from = start + Duration::days(i64::from(spec.from_day));
    for day in 0..spec.days {
        let day_start = start + Duration::days(i64::from(day));
        simulate_day(&mut devices, spec, day, &mut buffers);
        // Every window that ended before today began is complete: arrivals are never early.
        let pending = buffers.split_off(&day_start);
        let complete = std::mem::replace(&mut buffers, pending);
        write_objects(
            lake,
            spec,
            complete,
            write_from,
            &mut object_rng,
            &mut report,
        )
        .await?;
        let write = day >= spec.from_day;
        write_envelopes(lake, spec, day_start, write, &mut object_rng, &mut report).await?;
    }
    // What arrives after the period's last midnight has not landed yet.
    let end = start + Duration::days(i64::from(spec.days));
    let landed = buffers
        .into_iter()
        .map(|(slot, records)| {
            let arrived = records.into_iter().filter(|r| r.at < end).collect();
            (slot, arrived)
        })
        .filter(|(_, records): &(_, Vec<Arriving>)| !records.is_empty())
        .collect();
    write_objects(lake, spec, landed, write_from, &mut object_rng, &mut report).await?;
    Ok(report)
}

/// One day of the fleet's readings, each put in the buffer window it arrives in.
fn simulate_day(devices: &mut [Device], spec: &LandingsSpec, day: u32, buffers: &mut Buffers) {
    let start = spec.start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let window = Duration::minutes(i64::from(spec.buffer_minutes));
    let day_start = start + Duration::days(i64::from(day));
    let readings_per_day = 24 * 60 / spec.reading_minutes;
    for step in 0..readings_per_day {
        let at = day_start + Duration::minutes(i64::from(step * spec.reading_minutes));
        for device in devices.iter_mut() {
            let jitter = Duration::milliseconds(device.rng.random_range(0..60_000));
            let Some(record) = device.reading(at + jitter, day) else {
                continue;
            };
            let late = device.rng.random_bool(0.02);
            let delay = if late {
                Duration::seconds(device.rng.random_range(3600..6 * 3600))
            } else {
                Duration::seconds(device.rng.random_range(1..90))
            };
            let arrival = at + jitter + delay;
            let (line, malformed) = malform(record, &mut device.rng, spec.concat);
            let slot =
                start + window * ((arrival - start).num_seconds() / window.num_seconds()) as i32;
            buffers.entry(slot).or_default().push(Arriving {
                at: arrival,
                device: device.id.clone(),
                line,
                malformed,
                late,
            });
        }
    }
}

/// A record as a device sends it, when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub at: DateTime<Utc>,
    pub device: String,
    /// The record's JSON text (or what a faulty device sent instead).
    pub line: String,
    pub malformed: bool,
}

/// The records that [`generate_landings`] would write for `spec` (those arriving from day
/// `from_day` to the period's end), one by one in order of arrival, as the devices send them:
/// for sending them through an ingest API instead of writing objects.
pub fn arrivals(spec: &LandingsSpec) -> Result<Vec<Arrival>> {
    check(spec)?;
    let mut devices: Vec<Device> = (0..spec.devices).map(|i| Device::new(i, spec)).collect();
    let mut buffers: Buffers = BTreeMap::new();
    for day in 0..spec.days {
        simulate_day(&mut devices, spec, day, &mut buffers);
    }
    let start = spec.start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let (from, end) = (
        start + Duration::days(i64::from(spec.from_day)),
        start + Duration::days(i64::from(spec.days)),
    );
    let mut arrivals: Vec<Arrival> = buffers
        .into_values()
        .flatten()
        .filter(|r| r.at >= from && r.at < end)
        .map(|r| Arrival {
            at: r.at,
            device: r.device,
            line: r.line,
            malformed: r.malformed,
        })
        .collect();
    arrivals.sort_by_key(|a| a.at);
    Ok(arrivals)
}

/// About 0.2% of records are malformed: Python's `NaN` (not JSON) or, line by line, cut short.
/// Returns the line and whether it is malformed.
fn malform(record: serde_json::Value, rng: &mut ChaCha8Rng, concat: bool) -> (String, bool) {
    let line = record.to_string();
    if !rng.random_bool(0.002) {
        return (line, false);
    }
    if !concat && rng.random_bool(0.5) {
        let cut = rng.random_range(10..line.len() - 10);
        let boundary = (cut..line.len())
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(line.len());
        (line[..boundary].to_owned(), true)
    } else {
        let pm25 = record["pm25"].to_string();
        (
            line.replacen(&format!("\"pm25\":{pm25}"), "\"pm25\":NaN", 1),
            true,
        )
    }
}

fn object_key(
    prefix: &LakeKey,
    stream: &str,
    flushed: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
) -> Result<LakeKey> {
    let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    prefix.join(&format!(
        "{}/{stream}-1-{}-{uuid}.gz",
        flushed.format("%Y/%m/%d/%H"),
        flushed.format("%Y-%m-%d-%H-%M-%S")
    ))
}

fn gzip(text: &str) -> bytes::Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder
        .write_all(text.as_bytes())
        .expect("writes to memory");
    bytes::Bytes::from(encoder.finish().expect("writes to memory"))
}

async fn put_all(lake: &Lake, objects: Vec<(LakeKey, bytes::Bytes)>) -> Result<()> {
    futures::stream::iter(objects)
        .map(|(key, body)| async move { lake.put(&key, body).await })
        .buffer_unordered(16)
        .collect::<Vec<Result<()>>>()
        .await
        .into_iter()
        .collect()
}

/// Writes one object per buffer window that starts at or after `write_from` (the keys of the
/// others are still drawn, so that a later day's keys do not depend on where a run started).
async fn write_objects(
    lake: &Lake,
    spec: &LandingsSpec,
    buffers: Buffers,
    write_from: DateTime<Utc>,
    rng: &mut ChaCha8Rng,
    report: &mut GenerateReport,
) -> Result<()> {
    let mut objects = Vec::with_capacity(buffers.len());
    for (slot, mut records) in buffers {
        records.sort_by_key(|r| r.at);
        let flushed = records.last().map_or(slot, |r| r.at);
        let key = object_key(&spec.prefix, &spec.stream, flushed, rng)?;
        if slot < write_from {
            continue;
        }
        let separator = if spec.concat { "" } else { "\n" };
        let mut body = records
            .iter()
            .map(|r| r.line.as_str())
            .collect::<Vec<_>>()
            .join(separator);
        body.push_str(separator);
        let bytes = gzip(&body);
        report.objects += 1;
        report.records += records.len() as u64;
        report.malformed_records += records.iter().filter(|r| r.malformed).count() as u64;
        report.late_records += records.iter().filter(|r| r.late).count() as u64;
        report.bytes += bytes.len() as u64;
        objects.push((key, bytes));
    }
    put_all(lake, objects).await
}

/// One processing-failed object per day, of a handful of envelopes around a transform error.
async fn write_envelopes(
    lake: &Lake,
    spec: &LandingsSpec,
    day_start: DateTime<Utc>,
    write: bool,
    rng: &mut ChaCha8Rng,
    report: &mut GenerateReport,
) -> Result<()> {
    const CODES: [&str; 3] = [
        "Lambda.FunctionError",
        "Lambda.InvalidOutput",
        "Lambda.ProcessingFailed",
    ];
    let flushed = day_start + Duration::seconds(rng.random_range(3600..86_000));
    let count = rng.random_range(2..8);
    let mut lines = Vec::with_capacity(count);
    for _ in 0..count {
        let arrival = flushed - Duration::seconds(rng.random_range(60..600));
        let raw = json!({"device_id": format!("aq-{:04}", rng.random_range(0..spec.devices)), "ts": arrival.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(), "pm25": "sensor-fault"});
        lines.push(json!({
            "attemptsMade": 4,
            "arrivalTimestamp": arrival.timestamp_millis(),
            "errorCode": CODES[rng.random_range(0..CODES.len())],
            "errorMessage": "The Lambda function was successfully invoked but it returned an error result.",
            "attemptEndingTimestamp": (flushed).timestamp_millis(),
            "rawData": base64::engine::general_purpose::STANDARD.encode(raw.to_string()),
            "lambdaArn": "arn:aws:lambda:eu-west-1:123456789012:function:aq-transform:$LATEST"
        }).to_string());
    }
    let bytes = gzip(&(lines.join("\n") + "\n"));
    let key = object_key(
        &spec.error_prefix.join("processing-failed")?,
        &spec.stream,
        flushed,
        rng,
    )?;
    if !write {
        return Ok(());
    }
    report.error_objects += 1;
    report.envelopes += count as u64;
    report.bytes += bytes.len() as u64;
    lake.put(&key, bytes).await
}

#[cfg(test)]
mod tests;
