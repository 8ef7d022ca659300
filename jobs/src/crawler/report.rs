//! What a crawl reports: stored with the crawl (JSON) and printed by `sluice crawl`.

use serde::Serialize;

use super::infer::Conflict;
use crate::catalog::schema::SchemaDiff;

/// A new schema version (or a logged change) of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableChange {
    pub table: String,
    pub version: Option<i64>,
    pub diff: SchemaDiff,
}

/// A table split off from the first table at its location.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    pub table: String,
    pub location: String,
    pub reason: String,
}

/// An object that could not be catalogued.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub key: String,
    pub reason: String,
}

/// A type conflict found in a table.
#[derive(Debug, Clone, Serialize)]
pub struct TableConflict {
    pub table: String,
    #[serde(flatten)]
    pub conflict: Conflict,
}

/// A column whose observed type differs from the table's, not applied by the table's policy:
/// it waits for a person (`sluice catalog accept-change`), and until then conversion
/// quarantines the values that do not fit the table's type.
#[derive(Debug, Clone, Serialize)]
pub struct PendingChange {
    pub table: String,
    pub column: String,
    pub from: String,
    pub to: String,
    /// Values seen per type in this crawl's sample of the table's objects.
    pub counts: Vec<(String, u64)>,
    /// Objects in which the new type dominates the column (the first ten), and how many.
    pub objects: Vec<String>,
    pub objects_total: usize,
}

/// What a crawl did; stored with the crawl and printed by `sluice crawl`. A persisted format:
/// fields are only added, and `format` says which.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrawlReport {
    pub format: u32,
    pub crawl_id: i64,
    pub catalog_db: String,
    pub prefix: String,
    pub objects_listed: usize,
    pub objects_hidden: usize,
    pub objects_unchanged: usize,
    pub objects_new: usize,
    pub objects_changed: usize,
    /// Objects the catalog knew that the store no longer lists: marked gone.
    pub objects_gone: usize,
    pub objects_crawled: usize,
    pub objects_failed: usize,
    pub tables_created: Vec<String>,
    pub tables_updated: Vec<String>,
    pub schema_versions: Vec<TableChange>,
    pub logged_changes: Vec<TableChange>,
    pub splits: Vec<Split>,
    pub conflicts: Vec<TableConflict>,
    /// Type changes held for a person's decision.
    pub pending_changes: Vec<PendingChange>,
    pub failures: Vec<Failure>,
    pub partitions: usize,
    pub records: u64,
    pub malformed_in_sample: u64,
    pub bytes_read: u64,
    pub duration_ms: u64,
}
