//! Derived tables from SQL (`sluice transform`, `sluice:transform`): a `SELECT` over curated
//! tables written as a curated table of its own, built exactly once per input.

use jobs::catalog::TableName;
use jobs::lake::LakeKey;
use jobs::transform::{TransformOptions, TransformReport};
use serde::Deserialize;

use crate::{Error, Ops, Result};

/// `{"table", "sql", "partition_by"?: ["day"], "dest"?: "curated", "force"?: false,
/// "catalog"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformRequest {
    /// The derived table to build (new, or one a transform made).
    pub table: String,
    /// `SELECT ...` over curated tables of the catalog database.
    pub sql: String,
    /// Result columns that become Hive partition folders, in order.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Curated prefix in the curated lake; files go under `<dest>/<table>/`.
    #[serde(default = "default_dest")]
    pub dest: String,
    /// Build even when the table was already built from the same input.
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub catalog: Option<String>,
}

fn default_dest() -> String {
    "curated".to_owned()
}

impl TransformRequest {
    pub fn new(table: impl Into<String>, sql: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            sql: sql.into(),
            partition_by: Vec::new(),
            dest: default_dest(),
            force: false,
            catalog: None,
        }
    }
}

impl Ops {
    /// The transform job's options for a request.
    pub fn transform_options(&self, request: &TransformRequest) -> Result<TransformOptions> {
        let target = TableName::parse(&request.table).map_err(|e| Error::invalid("table", e))?;
        if request.sql.trim().is_empty() {
            return Err(Error::invalid("sql", "empty: a transform is a SELECT"));
        }
        let mut options = TransformOptions::new(
            self.catalog_db(request.catalog.as_deref())?,
            target,
            request.sql.clone(),
        );
        options.dest = LakeKey::parse(&request.dest).map_err(|e| Error::invalid("dest", e))?;
        options.partition_by = request.partition_by.clone();
        options.force = request.force;
        Ok(options)
    }

    /// Builds a derived table (or reports it already built from the same input).
    pub async fn transform(&self, request: &TransformRequest) -> Result<TransformReport> {
        let options = self.transform_options(request)?;
        let curated = self.curated_lake()?;
        Ok(jobs::transform::transform(&curated, self.catalog().await?, &options).await?)
    }
}
