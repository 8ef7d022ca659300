//! The two migration folders (`migrations/sqlite`, `migrations/postgres`) define the same tables
//! with the same columns: one set of queries serves both backends only while they agree.

use std::collections::BTreeSet;

use sqlx::Row;
use tests::{Backend, TestDb};

/// (table, column) of every table the migrations made, sqlx's own bookkeeping aside.
async fn columns(db: &TestDb, query: &'static str) -> BTreeSet<(String, String)> {
    sqlx::query(query)
        .fetch_all(db.catalog.pool())
        .await
        .expect("the schema's columns")
        .iter()
        .map(|row| {
            (
                row.try_get::<String, _>(0).expect("table"),
                row.try_get::<String, _>(1).expect("column"),
            )
        })
        .filter(|(table, _)| !table.starts_with("_sqlx"))
        .collect()
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_define_the_same_tables_and_columns() {
    let sqlite = TestDb::new(Backend::Sqlite).await;
    let postgres = TestDb::new(Backend::Postgres).await;
    let on_sqlite = columns(
        &sqlite,
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
    )
    .await;
    let on_postgres = columns(
        &postgres,
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public'",
    )
    .await;
    assert!(
        on_sqlite.len() > 50,
        "the migrations made tables: {on_sqlite:?}"
    );
    let only_sqlite: Vec<_> = on_sqlite.difference(&on_postgres).collect();
    let only_postgres: Vec<_> = on_postgres.difference(&on_sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:?}\nonly in Postgres: {only_postgres:?}"
    );
}
