//! sluice's data jobs.
//!
//! Everything that reads or writes data lives here, behind plain async functions that the
//! `scheduler` crate (CLI, and later the orchestrator's Task resources) calls:
//!
//! - [`lake`]: the object store every byte goes through, rooted at one URL (`file://`, `s3://`,
//!   `memory://`); no key can escape the root.
//! - [`catalog`]: the Glue-style catalog in SQLite or Postgres (databases, tables, schema versions,
//!   partitions, objects, crawls), with its migrations.
//! - [`crawler`]: turns raw Firehose landings into catalog tables: sniffs compression and format,
//!   infers and merges Arrow schemas, detects partitions and groups compatible objects into tables.
//! - [`dataset`]: builds DeepAR's time series from a curated table (polars): aggregation per item
//!   and frequency, explicit gaps, time splits, SageMaker JSON lines, snapshot ids.
//! - [`drift`]: whether recent data moved away from a model's training window (KS, Wasserstein,
//!   PSI per series and feature, Evidently's defaults), and the stored reports.
//! - [`forecasts`]: batch forecast runs as Parquet in the lake, listed in the database.
//! - [`generate`]: writes realistic Firehose landings of an air-quality fleet, deterministic per seed.
//! - [`query`]: SQL over catalog tables (polars' SQL context), with partition pruning.
//!
//! The crate has one error type, [`Error`]. Problems with a single landed object are not errors of
//! the crawl: they are recorded on the object ([`crawler::ObjectFailure`]) and the crawl goes on.

pub mod catalog;
pub mod convert;
pub mod crawler;
pub mod dataset;
pub mod drift;
mod error;
pub mod forecasts;
pub mod generate;
pub mod lake;
pub mod query;
pub mod transform;

/// Makes ring the process's TLS crypto provider (rustls), once; every HTTP client (S3, the HTTP
/// Task, the tests' and benchmarks' clients) needs one before it is built. ring is the binary's
/// one crypto library: polars' object_store links it already.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another provider installed first (by an embedding program) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub use error::{Error, Result};
