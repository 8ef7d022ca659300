//! Deployments: a canary of a slow version rolls back by itself during its bake without a
//! failed request, and a linear rollout of a good version finishes and moves the alias the
//! endpoint follows.

use std::time::Duration;

use models::registry::{AliasName, Target};
use scheduler::serving::deployments::{self, Settings, Step, Strategy};
use tests::Backend;

use super::{Fixture, OPEN, invoke, options, request, spawn, upload_sized_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_of_a_slow_version_rolls_back_and_a_good_one_rolls_out() {
    let fixture = Fixture::new(Backend::Sqlite, 1).await;
    let slow = fixture
        .register(upload_sized_model(&fixture.lake, 5, 192, 4).await)
        .await;
    let good = fixture
        .register(upload_sized_model(&fixture.lake, 6, 8, 1).await)
        .await;
    fixture.endpoint("default", &[]).await;
    let serving = fixture.serving(OPEN, options());
    serving.refresh().await.unwrap();
    let base = spawn(scheduler::serving::router(serving.clone())).await;
    let http = tests::http();
    let url = format!("{base}/invocations");
    let pool = fixture.db.catalog.pool().clone();
    let champion = || async {
        fixture
            .registry
            .resolve(&fixture.group, &Target::Alias(AliasName::champion()))
            .await
            .unwrap()
            .unwrap()
            .version
    };

    // The slow version gets half the traffic, then fails its p99 threshold during the bake.
    let canary = Settings {
        strategy: Strategy::Canary { percent: 50 },
        bake: Duration::from_secs(3600),
        max_error_rate: 0.01,
        max_p99_ms: 20.0,
        min_requests: 10,
    };
    let id = deployments::start(&pool, "default", slow, canary)
        .await
        .unwrap();
    assert!(
        deployments::start(&pool, "default", good, canary)
            .await
            .is_err(),
        "one at a time"
    );
    serving.refresh().await.unwrap();
    let mut versions = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (status, version, _, body) = invoke(&http, &url, &request(48), &[]).await;
        assert_eq!(status, 200, "{body}");
        versions.insert(version.unwrap());
    }
    assert_eq!(versions.len(), 2, "both versions answered: {versions:?}");
    serving.housekeeping().await.unwrap();
    let rolled = deployments::list(&pool, Some("default")).await.unwrap();
    assert_eq!(rolled[0].id, id);
    assert_eq!(rolled[0].status, "rolled-back", "{rolled:?}");
    assert!(
        rolled[0].reason.as_deref().unwrap().contains("p99"),
        "{rolled:?}"
    );
    for _ in 0..5 {
        let (status, version, variant, _) = invoke(&http, &url, &request(48), &[]).await;
        assert_eq!(
            (status, version.as_deref(), variant.as_deref()),
            (200, Some("g:v1"), Some("primary"))
        );
    }
    assert_eq!(champion().await, 1, "a rollback leaves the champion alone");

    // A good version rolls out in two linear steps and becomes the champion.
    let linear = Settings {
        strategy: Strategy::Linear { step: 50 },
        bake: Duration::ZERO,
        max_error_rate: 0.01,
        max_p99_ms: 1000.0,
        min_requests: 1,
    };
    deployments::start(&pool, "default", good, linear)
        .await
        .unwrap();
    serving.refresh().await.unwrap();
    for _ in 0..10 {
        assert_eq!(invoke(&http, &url, &request(48), &[]).await.0, 200);
    }
    serving.stats.flush(&pool, &serving.process).await.unwrap();
    let steps = deployments::tick(&pool).await.unwrap();
    assert_eq!(
        steps.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
        vec![Step::Shift(100)]
    );
    serving.housekeeping().await.unwrap();
    let done = deployments::list(&pool, Some("default")).await.unwrap();
    assert_eq!(
        (done[0].status.as_str(), done[0].weight),
        ("succeeded", 100),
        "{done:?}"
    );
    assert_eq!(champion().await, good);
    serving.refresh().await.unwrap();
    let (status, version, variant, _) = invoke(&http, &url, &request(48), &[]).await;
    assert_eq!(
        (status, version, variant.as_deref()),
        (200, Some(format!("g:v{good}")), Some("primary"))
    );
    let history = fixture.registry.history(&fixture.group).await.unwrap();
    let last = history.last().unwrap();
    assert!(last.actor.starts_with("deployment:"), "{last:?}");
}
