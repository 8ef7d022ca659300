//! The prediction endpoints over real HTTP on port 0: SageMaker's contract and its errors,
//! version swaps under concurrent load, servers following alias moves (SQLite by polling,
//! Postgres by notification), and token scopes.

mod contract;
mod deploy;
mod follow;

use std::sync::Arc;
use std::time::Duration;

use candle_core::Device;
use jobs::lake::Lake;
use models::deepar::series::Series;
use models::deepar::{Hyperparameters, TrainOptions, artifact, train};
use models::registry::{AliasName, Change, GroupName, NewVersion, Registry};
use scheduler::serving::endpoints::{self, EndpointSpec, Variant};
use scheduler::serving::{Auth, AuthOptions, ServeOptions, Serving};
use serde_json::{Value, json};
use tests::{Backend, TestDb};

/// Hourly series with a daily cycle.
pub fn panel(series: usize, hours: usize) -> Vec<Series> {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    (0..series)
        .map(|i| Series {
            start,
            target: (0..hours)
                .map(|t| {
                    let day = (2.0 * std::f32::consts::PI * (t % 24) as f32 / 24.0).sin();
                    40.0 + 10.0 * i as f32 + 15.0 * day + ((t * 7 + i) % 5) as f32
                })
                .collect(),
            cat: vec![],
            dynamic_feat: vec![],
            item_id: Some(format!("device-{i}")),
        })
        .collect()
}

/// Trains a tiny model and uploads its directory to the lake; returns the artifact key.
pub async fn upload_model(lake: &Lake, seed: u64) -> String {
    upload_sized_model(lake, seed, 8, 1).await
}

/// [`upload_model`] with a given LSTM size (a large one answers slowly).
pub async fn upload_sized_model(lake: &Lake, seed: u64, cells: usize, layers: usize) -> String {
    let hp = Hyperparameters::from_map(
        json!({"time_freq": "H", "context_length": "24", "prediction_length": "24",
               "epochs": "1", "num_cells": cells.to_string(), "num_layers": layers.to_string(),
               "mini_batch_size": "8", "num_batches_per_epoch": "2", "num_eval_samples": "20"})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let options = TrainOptions {
            seed,
            device: Device::Cpu,
            source: "panel",
            on_epoch: None,
        };
        let (model, _) = train(&hp, &panel(3, 24 * 10), options).unwrap();
        artifact::save(&model, &path, &artifact::Lineage::default()).unwrap();
    })
    .await
    .unwrap();
    let key = format!("models/test/{seed}-{cells}x{layers}");
    for name in [artifact::CONFIG, artifact::WEIGHTS] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        tests::put(lake, &format!("{key}/{name}"), bytes).await;
    }
    key
}

/// A registry with versions of group `g` over the given artifacts, v1 the champion.
pub struct Fixture {
    pub db: TestDb,
    pub lake: Lake,
    pub registry: Registry,
    pub group: GroupName,
}

impl Fixture {
    pub async fn new(backend: Backend, models: usize) -> Self {
        let db = TestDb::new(backend).await;
        let lake = Lake::in_memory();
        let registry = Registry::new(db.catalog.pool().clone());
        let group = GroupName::parse("g").unwrap();
        let fixture = Self {
            db,
            lake,
            registry,
            group,
        };
        for seed in 0..models {
            let artifact = upload_model(&fixture.lake, seed as u64).await;
            fixture.register(artifact).await;
        }
        fixture.promote(1).await;
        fixture
    }

    /// Registers another version from an uploaded artifact; returns its number.
    pub async fn register(&self, artifact: String) -> u32 {
        self.registry
            .register(
                &self.group,
                &NewVersion {
                    artifact,
                    dataset_snapshot: None,
                    training_execution: None,
                    hyperparameters: json!({}),
                    metrics: json!({}),
                    baseline_metrics: json!({}),
                    actor: "test".into(),
                },
            )
            .await
            .unwrap()
            .version
    }

    pub async fn promote(&self, version: u32) {
        self.registry
            .move_alias(
                &self.group,
                &AliasName::champion(),
                version,
                &Change {
                    actor: "test".into(),
                    reason: format!("to v{version}"),
                },
            )
            .await
            .unwrap();
    }

    pub async fn endpoint(&self, name: &str, variants: &[&str]) {
        let variants = variants
            .iter()
            .map(|v| Variant::parse(v).unwrap())
            .collect();
        let spec = EndpointSpec::new(name, self.group.clone(), variants).unwrap();
        endpoints::put(self.db.catalog.pool(), &spec).await.unwrap();
    }

    pub fn serving(&self, auth: AuthOptions, options: ServeOptions) -> Arc<Serving> {
        let pool = self.db.catalog.pool().clone();
        let settings = scheduler::config::Config {
            database: self.db.url.clone(),
            ..scheduler::config::Config::default()
        }
        .ops_settings();
        Arc::new(Serving::new(
            ops::Ops::with_catalog(settings, self.db.catalog.clone()),
            pool.clone(),
            self.lake.clone(),
            Arc::new(Auth::new(pool, auth)),
            options,
        ))
    }
}

pub fn options() -> ServeOptions {
    ServeOptions {
        default_endpoint: "default".into(),
        workers: 2,
        queue_depth: 16,
        max_body_bytes: 64 * 1024,
        refresh: Duration::from_secs(3600),
        default_samples: 20,
    }
}

pub const OPEN: AuthOptions = AuthOptions {
    enabled: true,
    anonymous_predict: true,
};

/// Serves a router on port 0; returns its base URL.
pub async fn spawn(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router).into_future());
    base
}

/// A one-series request for `hours` of history.
pub fn request(hours: usize) -> Value {
    let series = &panel(1, hours)[0];
    json!({
        "instances": [{"start": "2024-01-01 00:00:00", "target": series.target}],
        "configuration": {"num_samples": 10, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.9"]},
    })
}

/// Status, the version header and the JSON body of an invocation.
pub async fn invoke(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<String>, Value) {
    let mut request = http.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (version, variant) = (
        header("x-sluice-model-version"),
        header("x-amzn-invoked-production-variant"),
    );
    (
        status,
        version,
        variant,
        response.json().await.unwrap_or(Value::Null),
    )
}
