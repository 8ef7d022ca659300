//! Stored forecasts in the lake (batch runs, and what endpoints served): one zstd Parquet file per run, long format (one row per item and
//! step: `item_id`, `timestamp`, `step`, `mean`, one column per quantile such as `q10`, and the
//! model that answered), under `forecasts/<group>/run=<run id>/`, and a `batch_forecasts` row
//! per run so accuracy monitoring can find them and join the actuals that land later.
//!
//! Beside the forecast, `history.parquet` keeps the last points of each series before its
//! forecast starts (`item_id`, `timestamp`, `target`; see [`history_points`]), and the row
//! records what the run read: its input file and, when that file is a dataset's, the dataset
//! (table, catalog, spec), from which the actuals that land later can be read back.

mod files;

use sqlx::{AnyPool, Row};

use crate::catalog::now_ms;
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};
use files::{encode, encode_history};
pub use files::{read, read_history};

/// The rows of one run, column by column.
#[derive(Debug, Clone, Default)]
pub struct ForecastRows {
    pub item_id: Vec<String>,
    /// Milliseconds since the epoch (UTC) of each forecast point.
    pub timestamp_ms: Vec<i64>,
    /// 1 for the first point after the history.
    pub step: Vec<u32>,
    pub mean: Vec<f32>,
    /// (quantile, values), in the order of the columns.
    pub quantiles: Vec<(f64, Vec<f32>)>,
    /// The points of each series before its forecast, written beside it when not empty.
    pub history: HistoryRows,
}

/// The last observed points of each series before its forecast starts, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRows {
    pub item_id: Vec<String>,
    pub timestamp_ms: Vec<i64>,
    /// NaN where the series had no value.
    pub target: Vec<f32>,
}

impl HistoryRows {
    /// Appends the last [`history_points`] of a series (`target[i]` at `timestamp_ms(i)`).
    pub fn keep(
        &mut self,
        item: &str,
        target: &[f32],
        horizon: usize,
        timestamp_ms: impl Fn(usize) -> i64,
    ) {
        let from = target.len().saturating_sub(history_points(horizon));
        for (i, value) in target.iter().enumerate().skip(from) {
            self.item_id.push(item.to_owned());
            self.timestamp_ms.push(timestamp_ms(i));
            self.target.push(*value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.item_id.is_empty()
    }
}

/// How many points of history a run keeps per series: four forecast horizons, at least 48 and
/// at most 2,000 (enough to see the forecast against what came before it, never the whole
/// series of a long history).
pub fn history_points(horizon: usize) -> usize {
    (4 * horizon).clamp(48, 2_000)
}

/// The dataset a run's input was built as (`sluice dataset`'s manifest beside the input): the
/// actuals that land later are read from its table with its spec.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetRef {
    pub table: String,
    #[serde(default)]
    pub catalog: Option<String>,
    pub snapshot_id: String,
    pub spec: crate::dataset::DatasetSpec,
}

/// What a run read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    /// The file of series it forecast (batch runs).
    pub input: Option<String>,
    pub dataset: Option<DatasetRef>,
    /// The execution whose step made it: one run per group and execution, however often the
    /// step runs.
    pub execution: Option<String>,
}

/// The column name of a quantile: 0.1 → `q10`, 0.025 → `q2.5`.
pub fn quantile_column(q: f64) -> String {
    let percent = (q * 1000.0).round() / 10.0;
    format!("q{percent}")
}

/// Where a run's forecasts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `sluice:batch-forecast`.
    Batch,
    /// What an endpoint answered, flushed by the serving process.
    Served,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Batch => "batch",
            Source::Served => "served",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Source::Batch => "",
            Source::Served => "served-",
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BatchRun {
    pub id: String,
    pub model_group: String,
    pub model_version: u32,
    pub key: String,
    pub items: usize,
    pub rows: usize,
    pub created_at: i64,
    /// `batch` or `served`.
    pub source: String,
    pub input: Option<String>,
    pub dataset: Option<DatasetRef>,
    /// The history kept beside the forecast (none for runs older than migration 0017).
    pub history_key: Option<String>,
    /// The execution whose step made it, if a workflow's.
    pub execution: Option<String>,
}

/// Writes a run's files to the lake, then records the run (the files are only listed once
/// complete; a crash in between leaves unlisted files, never a listed partial one).
pub async fn write(
    pool: &AnyPool,
    lake: &Lake,
    group: &str,
    version: u32,
    rows: &ForecastRows,
    source: Source,
    provenance: &Provenance,
) -> Result<BatchRun> {
    let created_at = now_ms();
    let id = match &provenance.execution {
        // The same keys each time the execution's step runs: a second attempt overwrites the
        // files of one that died before it recorded its run, and finds a recorded one.
        Some(execution) => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(format!("{group}\0{execution}").as_bytes());
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}exec-{hex}", source.prefix())
        }
        None => {
            let stamp = chrono::DateTime::from_timestamp_millis(created_at)
                .unwrap_or_default()
                .format("%Y%m%dT%H%M%S");
            format!(
                "{}{stamp}-{}",
                source.prefix(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        }
    };
    let key = LakeKey::parse(&format!("forecasts/{group}/run={id}/part-0.parquet"))?;
    let history_key = if rows.history.is_empty() {
        None
    } else {
        let history = LakeKey::parse(&format!("forecasts/{group}/run={id}/history.parquet"))?;
        lake.put(&history, encode_history(&rows.history)?.into())
            .await?;
        Some(history.as_str().to_owned())
    };
    let bytes = encode(rows, group, version)?;
    lake.put(&key, bytes.into()).await?;
    let items: std::collections::HashSet<&str> = rows.item_id.iter().map(String::as_str).collect();
    let run = BatchRun {
        id,
        model_group: group.to_owned(),
        model_version: version,
        key: key.as_str().to_owned(),
        items: items.len(),
        rows: rows.item_id.len(),
        created_at,
        source: source.as_str().to_owned(),
        input: provenance.input.clone(),
        dataset: provenance.dataset.clone(),
        history_key,
        execution: provenance.execution.clone(),
    };
    let dataset = run
        .dataset
        .as_ref()
        .map(|d| serde_json::to_string(d).expect("dataset references serialize"));
    let inserted = sqlx::query(
        "INSERT INTO batch_forecasts (id, model_group, model_version, lake_key, items, row_count, created_at, source, \
         input, dataset, history_key, execution_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&run.id)
    .bind(group)
    .bind(i64::from(version))
    .bind(&run.key)
    .bind(run.items as i64)
    .bind(run.rows as i64)
    .bind(created_at)
    .bind(source.as_str())
    .bind(&run.input)
    .bind(&dataset)
    .bind(&run.history_key)
    .bind(&run.execution)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        // The execution's step ran twice at once: the run recorded first stands.
        if let Some(recorded) = self::run(pool, group, &run.id).await? {
            return Ok(recorded);
        }
    }
    Ok(run)
}

/// The run of a group that an execution's step made, if it made one.
pub async fn by_execution(
    pool: &AnyPool,
    group: &str,
    execution: &str,
) -> Result<Option<BatchRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts WHERE model_group = $1 AND execution_id = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group)
        .bind(execution)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(run_row).transpose()
}

const RUN_COLUMNS: &str = "id, model_group, model_version, lake_key, items, row_count, created_at, source, \
    input, dataset, history_key, execution_id";

fn run_row(row: &sqlx::any::AnyRow) -> Result<BatchRun> {
    let dataset: Option<String> = row.try_get("dataset")?;
    let id: String = row.try_get("id")?;
    let dataset = dataset
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| Error::CorruptRecord {
                what: "forecast run",
                reason: format!("{id}: its dataset reference does not read: {e}"),
            })
        })
        .transpose()?;
    Ok(BatchRun {
        id,
        model_group: row.try_get("model_group")?,
        model_version: row.try_get::<i64, _>("model_version")? as u32,
        key: row.try_get("lake_key")?,
        items: row.try_get::<i64, _>("items")? as usize,
        rows: row.try_get::<i64, _>("row_count")? as usize,
        created_at: row.try_get("created_at")?,
        source: row.try_get("source")?,
        input: row.try_get("input")?,
        dataset,
        history_key: row.try_get("history_key")?,
        execution: row.try_get("execution_id")?,
    })
}

/// The runs of a group, newest first.
pub async fn runs(pool: &AnyPool, group: &str) -> Result<Vec<BatchRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts WHERE model_group = $1 ORDER BY created_at DESC, id DESC"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group)
        .fetch_all(pool)
        .await?;
    rows.iter().map(run_row).collect()
}

/// The latest runs of every group, newest first.
pub async fn latest(pool: &AnyPool, limit: usize) -> Result<Vec<BatchRun>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts ORDER BY created_at DESC, id DESC LIMIT $1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit as i64)
        .fetch_all(pool)
        .await?;
    rows.iter().map(run_row).collect()
}

/// One run of a group.
pub async fn run(pool: &AnyPool, group: &str, id: &str) -> Result<Option<BatchRun>> {
    let sql =
        format!("SELECT {RUN_COLUMNS} FROM batch_forecasts WHERE model_group = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(group)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// What [`expire`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    /// Runs no longer listed.
    pub runs: usize,
    /// Their files deleted from the lake.
    pub files: usize,
}

/// Deletes the forecast runs created before `before_ms`, except the newest of each group and
/// source (a chart and drift detection always have the latest), and then their files. A crash
/// between the two leaves unlisted files, never a listed run without its files.
pub async fn expire(pool: &AnyPool, lake: &Lake, before_ms: i64) -> Result<Expired> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM batch_forecasts AS f WHERE created_at < $1 AND EXISTS \
         (SELECT 1 FROM batch_forecasts AS newer WHERE newer.model_group = f.model_group \
          AND newer.source = f.source AND (newer.created_at > f.created_at \
          OR (newer.created_at = f.created_at AND newer.id > f.id))) \
         ORDER BY created_at, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(before_ms)
        .fetch_all(pool)
        .await?;
    let mut expired = Expired::default();
    for run in rows.iter().map(run_row) {
        let run = run?;
        sqlx::query("DELETE FROM batch_forecasts WHERE id = $1")
            .bind(&run.id)
            .execute(pool)
            .await?;
        expired.runs += 1;
        for key in std::iter::once(&run.key).chain(run.history_key.as_ref()) {
            let path = lake.path(&LakeKey::parse(key)?);
            match object_store::ObjectStoreExt::delete(lake.store().as_ref(), &path).await {
                Ok(()) => expired.files += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests;
