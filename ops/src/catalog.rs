//! The catalog's type changes waiting for a person (`sluice catalog conflicts`,
//! `accept-change`, `dismiss-change`): a crawl never changes an existing column's type on its
//! own under the default policy; these are the decisions it leaves to people.

use jobs::catalog::type_changes::{Decision, TypeChange};
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

impl Ops {
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
