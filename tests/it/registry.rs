//! The model registry on SQLite and Postgres: version numbers, statuses, aliases and their full
//! history, rollback as an undo of alias moves, and the refusals that keep an alias on a
//! servable version.

use models::registry::{AliasName, Change, GroupName, NewVersion, Registry, Status, Target};
use serde_json::json;
use tests::{Backend, TestDb, on_both_backends};

fn new_version(artifact: &str, mean_wql: f64) -> NewVersion {
    NewVersion {
        artifact: artifact.into(),
        dataset_snapshot: Some("ds-1".into()),
        training_execution: Some("exec-1".into()),
        hyperparameters: json!({"epochs": "2"}),
        metrics: json!({"mean_wQuantileLoss": mean_wql}),
        baseline_metrics: json!({"mean_wQuantileLoss": 0.5}),
        actor: "test".into(),
    }
}

fn why(reason: &str) -> Change {
    Change {
        actor: "tester".into(),
        reason: reason.into(),
    }
}

async fn registry_versions_aliases_and_history(backend: Backend) {
    let db = TestDb::new(backend).await;
    let registry = Registry::new(db.catalog.pool().clone());
    let group = GroupName::parse("air-quality").unwrap();
    let champion = AliasName::champion();

    // Concurrent registrations get distinct consecutive numbers.
    let registrations = (0..4).map(|i| {
        let registry = registry.clone();
        let group = group.clone();
        async move {
            registry
                .register(
                    &group,
                    &new_version(&format!("models/a/{i}"), 0.1 + i as f64),
                )
                .await
                .unwrap()
                .version
        }
    });
    let mut numbers = futures::future::join_all(registrations).await;
    numbers.sort();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
    let v1 = registry.version(&group, 1).await.unwrap();
    assert_eq!(v1.status, Status::Pending);
    assert_eq!(v1.dataset_snapshot.as_deref(), Some("ds-1"));
    assert_eq!(v1.baseline_metrics["mean_wQuantileLoss"], 0.5);

    // An alias approves what it points at; moves are kept with their reasons.
    assert_eq!(
        registry
            .move_alias(&group, &champion, 1, &why("first"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        registry.version(&group, 1).await.unwrap().status,
        Status::Approved
    );
    assert_eq!(
        registry
            .move_alias(&group, &champion, 2, &why("better"))
            .await
            .unwrap(),
        Some(1)
    );
    registry
        .move_alias(&group, &champion, 3, &why("better still"))
        .await
        .unwrap();
    let resolved = registry
        .resolve(&group, &Target::Alias(champion.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.version, 3);
    assert_eq!(resolved.aliases, vec!["champion"]);

    // Rollback undoes moves one at a time: 3 → 2 → 1, then there is nothing before.
    assert_eq!(
        registry
            .rollback(&group, &champion, &why("v3 regressed"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        registry
            .rollback(&group, &champion, &why("v2 too"))
            .await
            .unwrap(),
        1
    );
    let err = registry
        .rollback(&group, &champion, &why("again"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing before it"), "{err}");

    // A version an alias points at cannot be rejected; a rejected one cannot be aliased.
    let err = registry
        .set_status(&group, 1, Status::Rejected, &why("no"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("champion"), "{err}");
    registry
        .set_status(&group, 4, Status::Rejected, &why("worse than naive"))
        .await
        .unwrap();
    let err = registry
        .move_alias(&group, &champion, 4, &why("try"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");
    assert!(matches!(
        registry
            .move_alias(&group, &champion, 9, &why("no such"))
            .await,
        Err(models::Error::NotFound { .. })
    ));

    // Another alias, removed again.
    let challenger = AliasName::parse("challenger").unwrap();
    registry
        .move_alias(&group, &challenger, 3, &why("shadow"))
        .await
        .unwrap();
    assert_eq!(
        registry
            .remove_alias(&group, &challenger, &why("done"))
            .await
            .unwrap(),
        3
    );
    assert!(
        registry
            .resolve(&group, &Target::Alias(challenger))
            .await
            .unwrap()
            .is_none()
    );

    // The history is complete and ordered by generation, which the group carries.
    let history = registry.history(&group).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "registered",
            "registered",
            "registered",
            "registered",
            "alias-moved",
            "status",
            "alias-moved",
            "status",
            "alias-moved",
            "status",
            "alias-rolled-back",
            "alias-rolled-back",
            "status",
            "alias-moved",
            "alias-removed",
        ]
    );
    let generations: Vec<i64> = history.iter().map(|e| e.generation).collect();
    assert_eq!(generations, (1..=history.len() as i64).collect::<Vec<_>>());
    let regressed = history.iter().find(|e| e.reason == "v3 regressed").unwrap();
    assert_eq!(
        (
            regressed.from_version,
            regressed.version,
            regressed.actor.as_str()
        ),
        (Some(3), Some(2), "tester")
    );
    assert_eq!(
        registry.generation(&group).await.unwrap(),
        Some(history.len() as i64)
    );
    assert!(matches!(
        registry.history(&GroupName::parse("nope").unwrap()).await,
        Err(models::Error::NotFound { .. })
    ));
}

on_both_backends!(registry_versions_aliases_and_history);
