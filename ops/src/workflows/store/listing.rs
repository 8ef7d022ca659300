//! Listing executions a page at a time: newest first, filtered, by keyset cursor.

use sqlx::AnyPool;

use super::{Error, Execution, ExecutionStatus, execution_of};

/// Which executions a page holds: every condition optional.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter<'a> {
    pub workflow: Option<&'a str>,
    pub status: Option<ExecutionStatus>,
    /// Started at or after (ms).
    pub started_from: Option<i64>,
    /// Started before (ms).
    pub started_before: Option<i64>,
    /// The last execution of the previous page: (started at, id).
    pub after: Option<(i64, &'a str)>,
    /// The children of this execution; None: top-level executions only.
    pub parent: Option<&'a str>,
}

/// Executions, newest first (ties by id, descending), at most `limit`. Only the conditions
/// given reach the SQL, so each query is a range scan of one of the `executions_by_*`
/// indexes (migration 0016), fast at any depth of paging.
pub async fn executions(
    pool: &AnyPool,
    filter: &ExecutionFilter<'_>,
    limit: i64,
) -> Result<Vec<Execution>, Error> {
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    match filter.parent {
        Some(_) => conditions.push(format!("parent_id = {}", next())),
        None => conditions.push("parent_id IS NULL".to_owned()),
    }
    if filter.workflow.is_some() {
        conditions.push(format!("workflow = {}", next()));
    }
    if filter.status.is_some() {
        conditions.push(format!("status = {}", next()));
    }
    if filter.started_from.is_some() {
        conditions.push(format!("started_at >= {}", next()));
    }
    if filter.started_before.is_some() {
        conditions.push(format!("started_at < {}", next()));
    }
    if filter.after.is_some() {
        let (at, same, id) = (next(), next(), next());
        conditions.push(format!(
            "(started_at < {at} OR (started_at = {same} AND id < {id}))"
        ));
    }
    let limit_at = next();
    let mut sql = select_executions!("").to_owned();
    sql.push_str("WHERE ");
    sql.push_str(&conditions.join(" AND "));
    sql.push_str(&format!(
        " ORDER BY started_at DESC, id DESC LIMIT {limit_at}"
    ));
    // Audited: the text is literals and numbered placeholders; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(parent) = filter.parent {
        query = query.bind(parent);
    }
    if let Some(workflow) = filter.workflow {
        query = query.bind(workflow);
    }
    if let Some(status) = filter.status {
        query = query.bind(status.as_str());
    }
    if let Some(from) = filter.started_from {
        query = query.bind(from);
    }
    if let Some(before) = filter.started_before {
        query = query.bind(before);
    }
    if let Some((at, id)) = filter.after {
        query = query.bind(at).bind(at).bind(id);
    }
    let rows = query.bind(limit).fetch_all(pool).await?;
    rows.iter().map(execution_of).collect()
}
