//! Conversion, compaction and vacuum of curated tables (`sluice convert|compact|vacuum`,
//! `sluice:convert`, `sluice:compact`).

use jobs::convert::{
    CompactReport, ConvertOptions, ConvertReport, FileOptions, Granularity, SourceDone,
    VacuumReport,
};
use jobs::lake::LakeKey;
use serde::Deserialize;

pub use jobs::convert::ConvertMode;

use crate::request::date;
use crate::{Error, Observer, Ops, Progress, Result};

/// `{"table", "dest"?: "curated", "partition_by"?: "day" | "hour", "event_time"?, "dry_run"?,
/// "reprocess"?, "from"?, "to"?, "target_file_mib"?: 128, "row_group_rows"?: 131072,
/// "catalog"?, "objects"?: [keys]}`. `from` and `to` (event dates, inclusive) come together
/// and only with `reprocess`; `dry_run` plans an incremental run; `objects` converts only those
/// new landing objects (a distributed Map's batch).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ConvertInput")]
pub struct ConvertRequest {
    pub table: String,
    /// Curated prefix in the curated lake; files go under `<dest>/<table>/`.
    pub dest: String,
    /// The finest partition: day (`year/month/day`) or hour.
    pub granularity: Granularity,
    /// The event-time column [default: the table's `ts`-like timestamp column].
    pub event_time: Option<String>,
    pub mode: ConvertMode,
    /// Target size of output files, in MiB.
    pub target_file_mib: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub catalog: Option<String>,
    /// Only these landing objects (a distributed Map's batch), by key; none: every new one.
    pub objects: Vec<String>,
}

/// A convert request as written: flags that [`ConvertRequest`] turns into one mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertInput {
    table: String,
    #[serde(default = "default_dest")]
    dest: String,
    #[serde(default)]
    partition_by: PartitionBy,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reprocess: bool,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default = "default_target_file_mib")]
    target_file_mib: u64,
    #[serde(default = "default_row_group_rows")]
    row_group_rows: usize,
    #[serde(default)]
    catalog: Option<String>,
    #[serde(default)]
    objects: Vec<String>,
}

/// `partition_by`: the finest partition column.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PartitionBy {
    #[default]
    Day,
    Hour,
}

fn default_dest() -> String {
    "curated".to_owned()
}

fn default_target_file_mib() -> u64 {
    128
}

fn default_row_group_rows() -> usize {
    FileOptions::default().row_group_rows
}

impl TryFrom<ConvertInput> for ConvertRequest {
    type Error = String;

    fn try_from(input: ConvertInput) -> Result<Self, String> {
        let from = input.from.as_deref().map(|t| date("from", t)).transpose()?;
        let to = input.to.as_deref().map(|t| date("to", t)).transpose()?;
        let mode = match (input.dry_run, input.reprocess, from, to) {
            (true, true, ..) => {
                return Err(
                    "dry_run plans an incremental run; it does not combine with reprocess".into(),
                );
            }
            (true, false, None, None) => ConvertMode::DryRun,
            (false, false, None, None) => ConvertMode::Incremental,
            (_, false, ..) => {
                return Err(
                    "from and to rebuild a range of event dates: they need reprocess".into(),
                );
            }
            (false, true, None, None) => ConvertMode::Reprocess,
            (false, true, Some(from), Some(to)) if from > to => {
                return Err(format!("from {from} is after to {to}"));
            }
            (false, true, Some(from), Some(to)) => ConvertMode::ReprocessRange { from, to },
            (false, true, Some(_), None) => {
                return Err("a range needs both ends: from is set, to is missing".into());
            }
            (false, true, None, Some(_)) => {
                return Err("a range needs both ends: to is set, from is missing".into());
            }
        };
        if !input.objects.is_empty() && mode.reprocess() {
            return Err(
                "objects picks new landing objects for an incremental run; it does not combine with reprocess".into(),
            );
        }
        Ok(Self {
            table: input.table,
            dest: input.dest,
            granularity: match input.partition_by {
                PartitionBy::Day => Granularity::Day,
                PartitionBy::Hour => Granularity::Hour,
            },
            event_time: input.event_time,
            mode,
            target_file_mib: input.target_file_mib,
            row_group_rows: input.row_group_rows,
            catalog: input.catalog,
            objects: input.objects,
        })
    }
}

impl ConvertRequest {
    /// An incremental run of `table` with every default.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            dest: default_dest(),
            granularity: Granularity::Day,
            event_time: None,
            mode: ConvertMode::Incremental,
            target_file_mib: default_target_file_mib(),
            row_group_rows: default_row_group_rows(),
            catalog: None,
            objects: Vec::new(),
        }
    }
}

/// `{"table", "target_file_mib"?: 128, "catalog"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactRequest {
    /// The crawled table, or its curated table.
    pub table: String,
    /// Files of a partition are merged up to about this size, in MiB.
    #[serde(default = "default_target_file_mib")]
    pub target_file_mib: u64,
    #[serde(default)]
    pub catalog: Option<String>,
}

/// `{"grace_minutes"?: 60}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VacuumRequest {
    /// Runs younger than this are left alone (they may still be running elsewhere).
    #[serde(default = "default_grace_minutes")]
    pub grace_minutes: i64,
}

fn default_grace_minutes() -> i64 {
    60
}

impl Ops {
    /// The conversion job's options for a request.
    pub fn convert_options(
        &self,
        request: &ConvertRequest,
        observer: &Observer,
    ) -> Result<ConvertOptions> {
        let mut options =
            ConvertOptions::new(self.catalog_db(request.catalog.as_deref())?, &request.table);
        options.dest = LakeKey::parse(&request.dest).map_err(|e| Error::invalid("dest", e))?;
        options.granularity = request.granularity;
        options.event_time = request.event_time.clone();
        options.mode = request.mode;
        options.objects =
            (!request.objects.is_empty()).then(|| request.objects.iter().cloned().collect());
        options.files = FileOptions {
            target_file_bytes: request.target_file_mib << 20,
            row_group_rows: request.row_group_rows,
            ..FileOptions::default()
        };
        let observer = observer.clone();
        options.on_source = Some(SourceDone(std::sync::Arc::new(move |key: &str| {
            observer.report(Progress::SourceConverted { key })
        })));
        Ok(options)
    }

    /// Converts the table's new objects (or reprocesses, or plans) as the request says.
    pub async fn convert(
        &self,
        request: &ConvertRequest,
        observer: &Observer,
    ) -> Result<ConvertReport> {
        let options = self.convert_options(request, observer)?;
        let (lake, curated) = (self.lake()?, self.curated_lake()?);
        Ok(jobs::convert::convert(&lake, &curated, self.catalog().await?, &options).await?)
    }

    /// Merges the small files of each partition of a curated table.
    pub async fn compact(&self, request: &CompactRequest) -> Result<CompactReport> {
        let options = jobs::convert::CompactOptions {
            catalog_db: self.catalog_db(request.catalog.as_deref())?,
            table: request.table.clone(),
            files: FileOptions {
                target_file_bytes: request.target_file_mib << 20,
                ..FileOptions::default()
            },
        };
        let curated = self.curated_lake()?;
        Ok(jobs::convert::compact(&curated, self.catalog().await?, &options).await?)
    }

    /// Finishes interrupted conversions and deletes what no committed run owns.
    pub async fn vacuum(&self, request: &VacuumRequest) -> Result<VacuumReport> {
        let curated = self.curated_lake()?;
        let grace_ms = request.grace_minutes.saturating_mul(60_000);
        Ok(jobs::convert::vacuum(&curated, self.catalog().await?, grace_ms).await?)
    }
}
