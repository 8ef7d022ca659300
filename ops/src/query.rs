//! SQL over the catalog's tables (`sluice query`, `sluice:query`): polars' SQL context over the
//! tables a query names, their partitions pruned by its conditions on partition keys.

use jobs::lake::LakeKey;
use jobs::query::TableRead;
use serde::{Deserialize, Serialize};

use crate::{Error, Ops, Result};

/// `{"sql": "SELECT ...", "catalog"?, "max_rows"?: 1000, "out"?: "results/daily.parquet"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub catalog: Option<String>,
    /// Rows in the output at most (the whole result goes to `out`).
    #[serde(default = "QueryRequest::default_max_rows")]
    pub max_rows: usize,
    /// A key in the curated lake to write the whole result to, as Parquet.
    #[serde(default)]
    pub out: Option<String>,
}

impl QueryRequest {
    fn default_max_rows() -> usize {
        1000
    }

    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            catalog: None,
            max_rows: Self::default_max_rows(),
            out: None,
        }
    }
}

/// A result column.
#[derive(Debug, Clone, Serialize)]
pub struct QueryColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// What a query returns: its columns, its first rows, and what it read.
#[derive(Debug, Clone, Serialize)]
pub struct QueryOutput {
    pub columns: Vec<QueryColumn>,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub row_count: usize,
    /// More rows than `max_rows`: the rest are in `result` (when asked for) only.
    pub truncated: bool,
    /// The lake key of the whole result, when `out` was given.
    pub result: Option<String>,
    pub files_read: usize,
    pub files_total: usize,
    pub tables: Vec<TableRead>,
}

impl Ops {
    /// Runs a query; returns its output and the whole result (for the CLI to render).
    pub async fn query_frame(
        &self,
        request: &QueryRequest,
    ) -> Result<(QueryOutput, jobs::query::DataFrameRef)> {
        let db = self.catalog_db(request.catalog.as_deref())?;
        let out = request
            .out
            .as_deref()
            .map(|key| LakeKey::parse(key).map_err(|e| Error::invalid("out", e)))
            .transpose()?;
        let landing = self.lake()?;
        let curated = self.curated_lake()?;
        let result =
            jobs::query::query(&landing, &curated, self.catalog().await?, &db, &request.sql)
                .await?;
        let frame = std::sync::Arc::new(result.frame);
        let written = match &out {
            Some(key) => {
                let bytes = {
                    let frame = frame.clone();
                    tokio::task::spawn_blocking(move || jobs::query::to_parquet(&frame)).await??
                };
                curated.put(key, bytes::Bytes::from(bytes)).await?;
                Some(key.to_string())
            }
            None => None,
        };
        let output = QueryOutput {
            columns: jobs::query::columns(&frame)
                .into_iter()
                .map(|(name, data_type)| QueryColumn { name, data_type })
                .collect(),
            rows: jobs::query::rows_json(&frame, request.max_rows),
            row_count: frame.height(),
            truncated: frame.height() > request.max_rows,
            result: written,
            files_read: result.tables.iter().map(|t| t.files_read).sum(),
            files_total: result.tables.iter().map(|t| t.files_total).sum(),
            tables: result.tables,
        };
        Ok((output, frame))
    }

    /// Runs a query (the Task resource's and the API's door).
    pub async fn query(&self, request: &QueryRequest) -> Result<QueryOutput> {
        Ok(self.query_frame(request).await?.0)
    }
}
