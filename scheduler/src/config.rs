//! sluice's one configuration: built-in defaults, then `sluice.toml` (or `--config FILE`), then
//! `SLUICE_*` environment variables (`SLUICE_S3__ENDPOINT` for nested keys), then the global
//! flags. It is loaded once in the binary and passed down explicitly.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The configuration's top-level keys, which `SLUICE_*` variables may set.
const SECTIONS: [&str; 12] = [
    "database",
    "lake",
    "curated_lake",
    "catalog",
    "s3",
    "crawler",
    "api",
    "serve",
    "auth",
    "process",
    "ingest",
    "retention",
];

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// `file://DIR`, `s3://bucket/prefix` or `memory://`.
    pub lake: String,
    /// Where curated Parquet and quarantine go (default: the lake).
    pub curated_lake: Option<String>,
    /// The catalog database (Glue's database) tables are registered in.
    pub catalog: String,
    pub s3: S3Config,
    pub crawler: CrawlerConfig,
    pub api: ApiConfig,
    pub serve: ServeConfig,
    pub auth: AuthConfig,
    pub process: ProcessConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
}

/// How long records of sluice's own work are kept: durations such as `90d`, `12h`, `30min`, or
/// `forever`. Each `sluice server` deletes what is older every few minutes; `sluice expire` does
/// it at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Ended executions with their histories and children, cron ticks, trigger firings, ended
    /// notification deliveries and the queue's records of steps that ran.
    pub executions: String,
    /// Forecast runs (batch and served) with their files; the newest of each group and source
    /// is always kept.
    pub forecasts: String,
}

impl RetentionConfig {
    /// The retention the operations apply.
    pub fn retention(&self) -> Result<ops::Retention, ops::Error> {
        Ok(ops::Retention {
            executions: ops::parse_retention("retention.executions", &self.executions)?,
            forecasts: ops::parse_retention("retention.forecasts", &self.forecasts)?,
        })
    }
}

/// What `sluice server` ingests with (the Firehose API): its write-ahead log and bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// The write-ahead log's directory, which records are fsync'd to before they are
    /// acknowledged (one server process per directory).
    pub wal_dir: PathBuf,
    /// MiB a stream may hold not yet delivered to the lake; beyond, puts are refused with
    /// Firehose's ServiceUnavailableException.
    pub max_buffered_mib: u64,
    /// How long a request id of Firehose's HTTP endpoint delivery is remembered, so that its
    /// retries are not written twice.
    pub dedup_seconds: u64,
    /// The MQTT bridge (`sluice server` and `sluice ingest mqtt` run it when set).
    #[serde(default)]
    pub mqtt: Option<crate::ingest::mqtt::MqttConfig>,
}

/// Commands workflows may run as `sluice:process:NAME` Tasks (none by default):
/// `[process.commands.score] argv = ["python3", "/opt/score.py"]`, `timeout_seconds = 300`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    #[serde(default)]
    pub commands: ops::ProcessCommands,
}

/// The prediction endpoints (`sluice serve`, and `sluice server` on the API's address).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address of `sluice serve`.
    pub listen: String,
    /// The endpoint `POST /invocations` answers for.
    pub default_endpoint: String,
    /// Inferences at once (0: the cores).
    pub workers: usize,
    /// Requests that may wait for a worker; beyond, 503 with Retry-After.
    pub queue_depth: usize,
    /// Largest request body (SageMaker's limit: 6 MB).
    pub max_body_bytes: usize,
    /// How often servers check the registry for alias and endpoint changes.
    pub refresh_ms: u64,
    /// Sample paths when a request names none.
    pub default_samples: usize,
}

/// API tokens (`sluice token create`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Require tokens (turn off only for local experiments).
    pub enabled: bool,
    /// Let callers without a token call the prediction endpoints.
    pub anonymous_predict: bool,
}

/// The HTTP API of `sluice server`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: String,
}

/// S3 settings; unset ones fall back to the usual `AWS_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
}

/// Crawler settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlerConfig {
    /// Records sampled per object.
    pub sample_records: usize,
    /// Decompressed bytes read per object for the sample.
    pub sample_bytes: usize,
    /// Records longer than this fail their object.
    pub max_record_bytes: usize,
    /// Read every object to its end (integrity and exact record counts).
    pub verify: bool,
    /// Column overlap for two schemas to share a table.
    pub min_column_overlap: f64,
    /// Schema-change policy of new tables: `add_columns`, `update` or `log`.
    pub schema_policy: String,
    /// The share of a column's values one type family needs to type the column (0.5 to 1);
    /// the other values are quarantined at conversion.
    pub dominant_share: f64,
    /// Objects read at once (0: twice the cores).
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        let sample = jobs::crawler::SampleOptions::default();
        Self {
            database: "sqlite://.sluice/sluice.db".into(),
            lake: "file://./lake".into(),
            curated_lake: None,
            catalog: "default".into(),
            s3: S3Config::default(),
            api: ApiConfig {
                listen: "127.0.0.1:8080".into(),
            },
            serve: ServeConfig {
                listen: "127.0.0.1:8081".into(),
                default_endpoint: "default".into(),
                workers: 0,
                queue_depth: 64,
                max_body_bytes: 6 * 1024 * 1024,
                refresh_ms: 2000,
                default_samples: 100,
            },
            auth: AuthConfig {
                enabled: true,
                anonymous_predict: false,
            },
            process: ProcessConfig::default(),
            ingest: IngestConfig {
                wal_dir: PathBuf::from(".sluice/ingest"),
                max_buffered_mib: 256,
                dedup_seconds: 3600,
                mqtt: None,
            },
            retention: RetentionConfig {
                executions: "90d".into(),
                forecasts: "30d".into(),
            },
            crawler: CrawlerConfig {
                sample_records: sample.max_records,
                sample_bytes: sample.max_bytes,
                max_record_bytes: sample.max_record_bytes,
                verify: sample.verify,
                min_column_overlap: jobs::crawler::group::GroupingOptions::default()
                    .min_column_overlap,
                schema_policy: "add_columns".into(),
                dominant_share: jobs::crawler::infer::DEFAULT_DOMINANT_SHARE,
                concurrency: 0,
            },
        }
    }
}

/// Values given on the command line, applied last.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lake: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curated_lake: Option<String>,
}

impl Config {
    /// Loads the layers. A `--config` file must exist; `./sluice.toml` is read when present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.is_file(), "config file {} not found", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None => {
                let default = PathBuf::from("sluice.toml");
                if default.is_file() {
                    figment = figment.merge(Toml::file(default));
                }
            }
        }
        figment = figment
            // Only the variables of the configuration's sections: others (SLUICE_TEST_* of the
            // test harness, SLUICE_TOKEN of a client) are not configuration.
            .merge(
                Env::prefixed("SLUICE_")
                    .filter(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        SECTIONS.contains(&key.split("__").next().unwrap_or_default())
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides));
        let config: Self = figment.extract().context("invalid configuration")?;
        config
            .crawler
            .schema_policy
            .parse::<jobs::catalog::SchemaPolicy>()
            .context("invalid configuration: crawler.schema_policy")?;
        config
            .retention
            .retention()
            .context("invalid configuration")?;
        let share = config.crawler.dominant_share;
        if !(share > 0.5 && share <= 1.0) {
            anyhow::bail!(
                "invalid configuration: crawler.dominant_share {share}: expected more than 0.5 and at most 1"
            );
        }
        Ok(config)
    }

    /// The serving options.
    pub fn serve_options(&self) -> crate::serving::ServeOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        crate::serving::ServeOptions {
            default_endpoint: self.serve.default_endpoint.clone(),
            workers: if self.serve.workers == 0 {
                cores
            } else {
                self.serve.workers
            },
            queue_depth: self.serve.queue_depth,
            max_body_bytes: self.serve.max_body_bytes,
            refresh: std::time::Duration::from_millis(self.serve.refresh_ms.max(50)),
            default_samples: self.serve.default_samples.max(1),
        }
    }

    /// The token rules.
    pub fn auth_options(&self) -> crate::serving::AuthOptions {
        crate::serving::AuthOptions {
            enabled: self.auth.enabled,
            anonymous_predict: self.auth.anonymous_predict,
        }
    }

    /// The ingest service's options.
    pub fn ingest_options(&self) -> ops::ingest::IngestOptions {
        ops::ingest::IngestOptions {
            wal_dir: self.ingest.wal_dir.clone(),
            max_buffered_bytes: self.ingest.max_buffered_mib.max(1) << 20,
            dedup_window: std::time::Duration::from_secs(self.ingest.dedup_seconds),
        }
    }

    /// What the operations need of it.
    pub fn ops_settings(&self) -> ops::Settings {
        ops::Settings {
            database: self.database.clone(),
            lake: self.lake.clone(),
            curated_lake: self.curated_lake.clone(),
            s3: self.s3_options(),
            catalog: self.catalog.clone(),
            crawl: ops::CrawlDefaults {
                sample: jobs::crawler::SampleOptions {
                    max_records: self.crawler.sample_records,
                    max_bytes: self.crawler.sample_bytes,
                    max_record_bytes: self.crawler.max_record_bytes,
                    verify: self.crawler.verify,
                },
                min_column_overlap: Some(self.crawler.min_column_overlap),
                // Checked by `load`; a hand-built configuration falls back to `add_columns`.
                schema_policy: self.crawler.schema_policy.parse().unwrap_or_default(),
                dominant_share: Some(self.crawler.dominant_share),
                concurrency: self.crawler.concurrency,
            },
            process: self.process.commands.clone(),
            // Checked by `load`; a hand-built configuration falls back to the defaults.
            retention: self.retention.retention().unwrap_or_default(),
        }
    }

    pub fn s3_options(&self) -> jobs::lake::S3Options {
        jobs::lake::S3Options {
            endpoint: self.s3.endpoint.clone(),
            region: self.s3.region.clone(),
            access_key_id: self.s3.access_key_id.clone(),
            secret_access_key: self.s3.secret_access_key.clone(),
            allow_http: self.s3.allow_http,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment::Jail's closures return figment::Error"
    )]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sluice.toml",
                "lake = \"file://from-file\"\ncatalog = \"prod\"\n[crawler]\nsample_records = 10\n",
            )?;
            jail.set_env("SLUICE_CATALOG", "from_env");
            jail.set_env("SLUICE_S3__ENDPOINT", "http://127.0.0.1:9000");
            jail.set_env("SLUICE_TEST_POSTGRES", "postgres://harness");
            jail.set_env("SLUICE_TOKEN", "a client's, not configuration");
            let config = Config::load(
                None,
                &Overrides {
                    database: Some("postgres://x".into()),
                    ..Overrides::default()
                },
            )
            .unwrap();
            assert_eq!(config.lake, "file://from-file");
            assert_eq!(config.catalog, "from_env");
            assert_eq!(config.database, "postgres://x");
            assert_eq!(config.crawler.sample_records, 10);
            assert_eq!(config.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
            let mut keys: Vec<String> = serde_json::to_value(&config)
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            let mut sections = SECTIONS.map(str::to_owned).to_vec();
            sections.sort();
            assert_eq!(keys, sections, "SLUICE_* variables reach every section");
            jail.create_file("bad.toml", "nope = 1\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("nope"), "{err:#}");
            assert!(Config::load(Some(Path::new("missing.toml")), &Overrides::default()).is_err());
            Ok(())
        });
    }
}
