//! The catalog's tables as people read them (`sluice catalog tables|show`, the console's table
//! pages), and its type changes waiting for a person (`sluice catalog conflicts`,
//! `accept-change`, `dismiss-change`): a crawl never changes an existing column's type on its
//! own under the default policy; these are the decisions it leaves to people.

use jobs::catalog::type_changes::{Decision, TypeChange};
use jobs::catalog::{PartitionInfo, SchemaChange, SchemaVersion, TableInfo};
use jobs::crawler::infer::Conflict;
use serde::{Deserialize, Serialize};

use crate::{Ops, Result};

/// `{"catalog"?, "table"?, "all"?}`: the pending changes (every decided one too with `all`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeChangesRequest {
    #[serde(default)]
    pub catalog: Option<String>,
    /// One table's changes [default: every table's].
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub all: bool,
}

/// The type changes, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct TypeChangesOutput {
    pub changes: Vec<TypeChange>,
}

/// `{"catalog"?, "table", "column", "type", "reason"?}`: a decision on the pending change of
/// `column` to `type` (a type name as listed: `string`, `double`, ...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeChangeDecision {
    #[serde(default)]
    pub catalog: Option<String>,
    pub table: String,
    /// Dotted column path (`pm25`, `location.alt`).
    pub column: String,
    #[serde(rename = "type")]
    pub to: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A table with what a person checks before trusting it: its schema's versions (newest
/// first) and the changes logged but not applied, the type conflicts its crawls resolved, the
/// type changes waiting for a decision, and its partitions.
#[derive(Debug, Clone)]
pub struct TableDetail {
    pub info: TableInfo,
    pub versions: Vec<SchemaVersion>,
    pub logged: Vec<SchemaChange>,
    /// (crawl, conflict).
    pub conflicts: Vec<(i64, Conflict)>,
    pub pending: Vec<TypeChange>,
    pub partitions: Vec<PartitionInfo>,
}

impl Ops {
    /// The tables of a catalog database (the configured one by default), by name.
    pub async fn catalog_tables(&self, catalog: Option<&str>) -> Result<Vec<TableInfo>> {
        let db = self.catalog_db(catalog)?;
        Ok(self.catalog().await?.tables(&db).await?)
    }

    /// A table and what a person checks before trusting it.
    pub async fn catalog_table(&self, catalog: Option<&str>, name: &str) -> Result<TableDetail> {
        let db = self.catalog_db(catalog)?;
        let store = self.catalog().await?;
        let info = store.table(&db, name).await?;
        let mut versions = store.versions(&db, name).await?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(TableDetail {
            versions,
            logged: store.schema_changes(&db, name).await?,
            conflicts: store.conflicts(&db, name).await?,
            pending: store.type_changes(&db, Some(name), false).await?,
            partitions: store.partitions(&db, name).await?,
            info,
        })
    }

    /// The catalog's type changes.
    pub async fn type_changes(&self, request: &TypeChangesRequest) -> Result<TypeChangesOutput> {
        let db = self.catalog_db(request.catalog.as_deref())?;
        let changes = self
            .catalog()
            .await?
            .type_changes(&db, request.table.as_deref(), request.all)
            .await?;
        Ok(TypeChangesOutput { changes })
    }

    /// Accepts a pending type change: the table gets a new schema version. `decided_by` names
    /// who decided (the adapter knows: a user, a token).
    pub async fn accept_type_change(
        &self,
        request: &TypeChangeDecision,
        decided_by: &str,
    ) -> Result<TypeChange> {
        let db = self.catalog_db(request.catalog.as_deref())?;
        Ok(self
            .catalog()
            .await?
            .accept_type_change(
                &db,
                &request.table,
                &request.column,
                &request.to,
                &decision(request, decided_by),
            )
            .await?)
    }

    /// Dismisses a pending type change: the table keeps its type.
    pub async fn dismiss_type_change(
        &self,
        request: &TypeChangeDecision,
        decided_by: &str,
    ) -> Result<TypeChange> {
        let db = self.catalog_db(request.catalog.as_deref())?;
        Ok(self
            .catalog()
            .await?
            .dismiss_type_change(
                &db,
                &request.table,
                &request.column,
                &request.to,
                &decision(request, decided_by),
            )
            .await?)
    }
}

fn decision(request: &TypeChangeDecision, decided_by: &str) -> Decision {
    Decision {
        decided_by: decided_by.to_owned(),
        reason: request.reason.clone(),
    }
}
