//! The catalog's tables as people read them (`sluice catalog tables|show`, the console's table
//! pages), and its type changes waiting for a person (`sluice catalog conflicts`,
//! `accept-change`, `dismiss-change`): a crawl never changes an existing column's type on its
//! own under the default policy; these are the decisions it leaves to people.

use jobs::catalog::type_changes::{Decision, TypeChange};
use jobs::catalog::{
    ConversionRunInfo, ObjectInfo, PartitionInfo, SchemaChange, SchemaVersion, TableInfo,
};
use jobs::crawler::infer::Conflict;
use jobs::lake::LakeKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// The latest conversion runs, newest first.
    pub runs: Vec<ConversionRunInfo>,
}

/// The quarantined records of one conversion run, grouped by the kind of their reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineView {
    pub table: String,
    pub run: i64,
    pub key: String,
    /// (kind of reason, records), most records first.
    pub reasons: Vec<(String, u64)>,
    /// The records of the kind asked for (every kind without one), at most `limit`.
    pub records: Vec<Value>,
    /// Records of that kind past `limit`.
    pub more: u64,
}

/// The kind of a quarantine reason, its values taken out so that records fail alike group
/// together: `pm25: "high" is not a double` is `pm25: … is not a double`; a reason without a
/// column is its part before the first colon (`not UTF-8 text`, `object unreadable`).
pub fn reason_kind(reason: &str) -> String {
    if let Some((column, rest)) = reason.split_once(": ")
        && let Some(at) = rest.find(" is not ").or_else(|| rest.find(" out of range"))
    {
        return format!("{column}: …{}", &rest[at..]);
    }
    reason
        .split_once(':')
        .map_or(reason, |(head, _)| head)
        .to_owned()
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
            runs: store.conversion_runs(&db, name, 20).await?,
            info,
        })
    }

    /// The objects the crawler could not read, with why.
    pub async fn failed_objects(&self) -> Result<Vec<ObjectInfo>> {
        Ok(self.catalog().await?.objects(true).await?)
    }

    /// The records a conversion run quarantined, grouped by the kind of their reason; with
    /// `reason`, the records of that kind (at most `limit`).
    pub async fn quarantine(
        &self,
        catalog: Option<&str>,
        table: &str,
        run: i64,
        reason: Option<&str>,
        limit: usize,
    ) -> Result<QuarantineView> {
        let db = self.catalog_db(catalog)?;
        let runs = self
            .catalog()
            .await?
            .conversion_runs(&db, table, i64::MAX)
            .await?;
        let key = runs
            .iter()
            .find(|r| r.id == run)
            .ok_or_else(|| crate::Error::NotFound {
                missing: crate::Missing::Other,
                what: format!("no conversion run {run} of {table}"),
            })?
            .quarantine
            .clone()
            .ok_or_else(|| crate::Error::NotFound {
                missing: crate::Missing::Other,
                what: format!("conversion run {run} of {table} quarantined nothing"),
            })?;
        let lake_key = LakeKey::parse(&key).map_err(|e| crate::Error::invalid("key", e))?;
        let bytes = self.curated_lake()?.get(&lake_key).await?;
        let mut counts: Vec<(String, u64)> = Vec::new();
        let (mut records, mut more) = (Vec::new(), 0);
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let entry: Value = serde_json::from_slice(line).unwrap_or_else(
                |e| serde_json::json!({"reason": format!("not JSON in the quarantine file: {e}")}),
            );
            let kind = reason_kind(entry["reason"].as_str().unwrap_or_default());
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((kind.clone(), 1)),
            }
            if reason.is_none_or(|r| r == kind) {
                if records.len() < limit {
                    records.push(entry);
                } else {
                    more += 1;
                }
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(QuarantineView {
            table: table.to_owned(),
            run,
            key,
            reasons: counts,
            records,
            more,
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

#[cfg(test)]
mod tests {
    use super::reason_kind;

    #[test]
    fn reasons_group_by_their_kind() {
        assert_eq!(
            reason_kind(r#"pm25: "high" is not a double"#),
            "pm25: … is not a double"
        );
        assert_eq!(
            reason_kind("ts: 12 is not a timestamp"),
            "ts: … is not a timestamp"
        );
        assert_eq!(
            reason_kind("pm25: 1e400 out of range for double"),
            "pm25: … out of range for double"
        );
        assert_eq!(
            reason_kind("not UTF-8 text: byte 0xff at 3"),
            "not UTF-8 text"
        );
        assert_eq!(reason_kind("object unreadable: gzip"), "object unreadable");
        assert_eq!(reason_kind("odd"), "odd");
    }
}
