//! Crawl: the landed objects under a prefix into the catalog (`sluice crawl`, `sluice:crawl`).

use jobs::catalog::SchemaPolicy;
use jobs::crawler::{CrawlOptions, CrawlProgress, CrawlReport, SampleOptions};
use jobs::lake::LakeKey;
use serde::Deserialize;

use crate::{Error, Observer, Ops, Progress, Result};

/// The configuration's crawler settings: what a request does not set.
#[derive(Debug, Clone, Default)]
pub struct CrawlDefaults {
    pub sample: SampleOptions,
    /// Column overlap for two schemas to share a table (None: the crawler's default).
    pub min_column_overlap: Option<f64>,
    pub schema_policy: SchemaPolicy,
    /// The share of a column's values that types it (None: the crawler's default).
    pub dominant_share: Option<f64>,
    /// Objects read at once (0: the crawler's default).
    pub concurrency: usize,
}

/// `{"prefix"?: "landing", "catalog"?, "recrawl"?, "sample_records"?, "verify"?,
/// "schema_policy"?: "add_columns" | "update" | "log", "table_prefix"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequest {
    /// Key prefix to crawl, relative to the lake root (empty: the whole lake).
    #[serde(default = "CrawlRequest::default_prefix")]
    pub prefix: String,
    /// Catalog database [default: the configured one].
    #[serde(default)]
    pub catalog: Option<String>,
    /// Read every object again, not only new and changed ones.
    #[serde(default)]
    pub recrawl: bool,
    /// Records sampled per object [default: the configured number].
    #[serde(default)]
    pub sample_records: Option<usize>,
    /// Read objects to their end [default: configured, true].
    #[serde(default)]
    pub verify: Option<bool>,
    /// Schema-change policy of new tables [default: configured].
    #[serde(default, deserialize_with = "policy")]
    pub schema_policy: Option<SchemaPolicy>,
    /// Prefix for the names of new tables.
    #[serde(default)]
    pub table_prefix: String,
}

fn policy<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<SchemaPolicy>, D::Error> {
    let text = Option::<String>::deserialize(de)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

impl CrawlRequest {
    fn default_prefix() -> String {
        "landing".to_owned()
    }

    /// A request with every default: the prefix `landing`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            catalog: None,
            recrawl: false,
            sample_records: None,
            verify: None,
            schema_policy: None,
            table_prefix: String::new(),
        }
    }
}

impl Ops {
    /// The crawler's options for a request: the request over the configuration.
    fn crawl_options(&self, request: &CrawlRequest, observer: &Observer) -> Result<CrawlOptions> {
        let defaults = &self.settings().crawl;
        let prefix = LakeKey::parse(&request.prefix).map_err(|e| Error::invalid("prefix", e))?;
        let mut options = CrawlOptions::new(self.catalog_db(request.catalog.as_deref())?, prefix);
        options.recrawl = request.recrawl;
        options.sample = SampleOptions {
            max_records: request
                .sample_records
                .unwrap_or(defaults.sample.max_records),
            verify: request.verify.unwrap_or(defaults.sample.verify),
            ..defaults.sample.clone()
        };
        if let Some(overlap) = defaults.min_column_overlap {
            options.grouping.min_column_overlap = overlap;
        }
        options.schema_policy = request.schema_policy.unwrap_or(defaults.schema_policy);
        if let Some(share) = defaults.dominant_share {
            options.dominant_share = share;
        }
        options.table_prefix = request.table_prefix.clone();
        if defaults.concurrency > 0 {
            options.concurrency = defaults.concurrency;
        }
        let observer = observer.clone();
        options.progress = Some(std::sync::Arc::new(move |event| match event {
            CrawlProgress::Planned { objects } => {
                observer.report(Progress::CrawlPlanned { objects })
            }
            CrawlProgress::ObjectDone { key } => {
                observer.report(Progress::ObjectCrawled { key: &key })
            }
        }));
        Ok(options)
    }

    /// Crawls the request's prefix into the catalog.
    pub async fn crawl(&self, request: &CrawlRequest, observer: &Observer) -> Result<CrawlReport> {
        let options = self.crawl_options(request, observer)?;
        let lake = self.lake()?;
        Ok(jobs::crawler::crawl(&lake, self.catalog().await?, &options).await?)
    }
}
