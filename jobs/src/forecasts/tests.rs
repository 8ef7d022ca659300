//! Runs written and read back: their history and provenance beside the forecast.

use super::*;

#[test]
fn history_keeps_the_last_points_of_each_series() {
    let mut history = HistoryRows::default();
    let target: Vec<f32> = (0..200).map(|i| i as f32).collect();
    history.keep("a", &target, 12, |i| i as i64 * 1000);
    assert_eq!(history.target.len(), 48);
    assert_eq!(history.target[0], 152.0);
    assert_eq!(history.timestamp_ms[47], 199_000);
    history.keep("b", &target[..10], 100, |i| i as i64);
    assert_eq!(history.item_id.len(), 58);
    assert_eq!(history_points(1_000), 2_000);
}

#[tokio::test]
async fn a_run_keeps_its_history_and_provenance_beside_its_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let catalog = crate::catalog::Catalog::connect(&url, &Default::default())
        .await
        .unwrap();
    let lake = Lake::in_memory();
    let mut rows = ForecastRows {
        item_id: vec!["a".into(), "a".into()],
        timestamp_ms: vec![3_600_000, 7_200_000],
        step: vec![1, 2],
        mean: vec![1.0, 2.0],
        quantiles: vec![(0.1, vec![0.5, 1.0]), (0.9, vec![1.5, 3.0])],
        history: HistoryRows::default(),
    };
    rows.history.keep("a", &[4.0, f32::NAN], 2, |i| i as i64);
    let provenance = Provenance {
        input: Some("work/test.jsonl".into()),
        dataset: None,
        execution: None,
    };
    let run = write(
        catalog.pool(),
        &lake,
        "g",
        3,
        &rows,
        Source::Batch,
        &provenance,
    )
    .await
    .unwrap();
    let found = super::run(catalog.pool(), "g", &run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.input.as_deref(), Some("work/test.jsonl"));
    assert_eq!(found.source, "batch");
    let history = read_history(&lake, found.history_key.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(history.target[0], 4.0);
    assert!(history.target[1].is_nan());
    let back = read(&lake, &found.key).await.unwrap();
    assert_eq!(back.mean, rows.mean);
    assert_eq!(back.quantiles, rows.quantiles);
    assert_eq!(latest(catalog.pool(), 5).await.unwrap().len(), 1);
    let missing = super::run(catalog.pool(), "g", "nope").await.unwrap();
    assert!(missing.is_none());
}

#[test]
fn quantile_columns_read_as_percent() {
    assert_eq!(quantile_column(0.1), "q10");
    assert_eq!(quantile_column(0.5), "q50");
    assert_eq!(quantile_column(0.025), "q2.5");
}

#[tokio::test]
async fn an_executions_run_is_made_once_however_often_its_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let catalog = crate::catalog::Catalog::connect(&url, &Default::default())
        .await
        .unwrap();
    let lake = Lake::in_memory();
    let rows = ForecastRows {
        item_id: vec!["a".into()],
        timestamp_ms: vec![3_600_000],
        step: vec![1],
        mean: vec![1.0],
        quantiles: vec![(0.5, vec![1.0])],
        history: HistoryRows::default(),
    };
    let of = |execution: &str| Provenance {
        execution: Some(execution.to_owned()),
        ..Provenance::default()
    };
    let first = write(
        catalog.pool(),
        &lake,
        "g",
        1,
        &rows,
        Source::Batch,
        &of("exec-1"),
    )
    .await
    .unwrap();
    // The step ran again (its worker died before it committed): the same run, the same files.
    let again = write(
        catalog.pool(),
        &lake,
        "g",
        1,
        &rows,
        Source::Batch,
        &of("exec-1"),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.id.as_str(), again.key.as_str()),
        (first.id.as_str(), first.key.as_str())
    );
    assert_eq!(
        again.created_at, first.created_at,
        "the recorded run stands"
    );
    let other = write(
        catalog.pool(),
        &lake,
        "g",
        1,
        &rows,
        Source::Batch,
        &of("exec-2"),
    )
    .await
    .unwrap();
    assert_ne!(other.id, first.id);
    let other_group = write(
        catalog.pool(),
        &lake,
        "h",
        1,
        &rows,
        Source::Batch,
        &of("exec-1"),
    )
    .await
    .unwrap();
    assert_ne!(other_group.key, first.key);
    assert_eq!(runs(catalog.pool(), "g").await.unwrap().len(), 2);
    let found = by_execution(catalog.pool(), "g", "exec-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id, found.execution.as_deref()),
        (first.id.clone(), Some("exec-1"))
    );
    assert!(
        by_execution(catalog.pool(), "g", "exec-3")
            .await
            .unwrap()
            .is_none()
    );
}
