//! What a conversion run is asked to do: its mode, its options, its progress callback and (in
//! test builds) where it stops on purpose.

use super::partition::Granularity;
use super::write::FileOptions;
use crate::catalog::CatalogDbName;
use crate::lake::LakeKey;

/// Where a run stops on purpose (fault injection, to prove exactly-once; a run stops there only
/// in builds with the `fail-points` feature, which the test suite enables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Files staged, nothing committed.
    BeforeCommit,
    /// Committed, nothing moved into place.
    AfterCommit,
    /// Committed, one file moved into place.
    MidPublish,
}

impl FailPoint {
    /// The error a run that stopped here on purpose fails with.
    pub(crate) fn stopped(self) -> crate::Error {
        crate::Error::InvalidArgument {
            field: "fail point",
            reason: match self {
                Self::BeforeCommit => "stopped before the commit",
                Self::AfterCommit => "stopped after the commit",
                Self::MidPublish => "stopped in the middle of the publish",
            }
            .into(),
        }
    }
}

/// Called with each source object's key once it is converted (progress, heartbeats).
#[derive(Clone)]
pub struct SourceDone(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for SourceDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceDone(..)")
    }
}

/// What a conversion run does with the table's landed objects. A range has both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvertMode {
    /// Convert the objects never converted (the bookmark).
    #[default]
    Incremental,
    /// Plan an incremental run and report it; convert nothing.
    DryRun,
    /// Convert every object again and replace the table's files atomically.
    Reprocess,
    /// Rebuild the partitions of these event dates (inclusive), closed under lineage (see
    /// [`scope`]), in one commit.
    ReprocessRange {
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    },
}

impl ConvertMode {
    pub fn dry_run(self) -> bool {
        self == Self::DryRun
    }

    /// Whether objects converted before are converted again.
    pub fn reprocess(self) -> bool {
        matches!(self, Self::Reprocess | Self::ReprocessRange { .. })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::DryRun => "dry run",
            Self::Reprocess => "reprocess",
            Self::ReprocessRange { .. } => "reprocess range",
        }
    }
}

/// What to convert and how.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub catalog_db: CatalogDbName,
    pub table: String,
    /// Curated prefix: files go under `<dest>/<table>/`.
    pub dest: LakeKey,
    pub granularity: Granularity,
    /// The event-time column (default: the table's first timestamp column, `ts`-like names first).
    pub event_time: Option<String>,
    pub mode: ConvertMode,
    /// Only these landing objects, by key (a distributed Map's batch, converted beside the
    /// others on other workers); None: every object not converted yet. One already converted is
    /// skipped (exactly once); one the table does not hold is refused.
    pub objects: Option<std::collections::BTreeSet<String>>,
    pub files: FileOptions,
    /// Objects decoded at once.
    pub concurrency: usize,
    #[cfg(feature = "fail-points")]
    pub fail_at: Option<FailPoint>,
    pub on_source: Option<SourceDone>,
}

impl ConvertOptions {
    /// Whether the run stops at `point` (a test's fault injection).
    pub(super) fn stops_at(&self, point: FailPoint) -> bool {
        #[cfg(feature = "fail-points")]
        return self.fail_at == Some(point);
        #[cfg(not(feature = "fail-points"))]
        {
            let _ = point;
            false
        }
    }

    pub fn new(catalog_db: CatalogDbName, table: &str) -> Self {
        Self {
            catalog_db,
            table: table.to_owned(),
            dest: LakeKey::parse("curated").expect("valid key"),
            granularity: Granularity::Day,
            event_time: None,
            mode: ConvertMode::Incremental,
            objects: None,
            files: FileOptions::default(),
            concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            #[cfg(feature = "fail-points")]
            fail_at: None,
            on_source: None,
        }
    }
}
