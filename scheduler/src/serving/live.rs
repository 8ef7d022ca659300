//! The models being served. A snapshot maps each endpoint to its variants and their loaded
//! models; requests read the current snapshot (an `Arc` clone under a read lock), and a refresh
//! builds the next one off the hot path (reads the registry, loads new versions from the lake,
//! checks each with a probe forecast) and swaps it in at once. A version that fails to load or
//! to forecast never replaces the one serving: its endpoint keeps the old snapshot's variants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use candle_core::Device;
use jobs::lake::Lake;
use models::forecaster::Forecaster;
use models::registry::{GroupName, Registry};
use sqlx::AnyPool;

use super::Error;
use super::endpoints::{self, EndpointSpec};

/// A variant with the model answering for it.
pub struct LiveVariant {
    pub name: String,
    pub weight: f64,
    pub version: u32,
    pub model: Arc<Forecaster>,
}

/// An endpoint as served now.
pub struct LiveEndpoint {
    pub name: String,
    pub group: GroupName,
    /// Variants whose target resolves to a loaded version; may be empty (nothing published).
    pub variants: Vec<LiveVariant>,
}

impl LiveEndpoint {
    /// The variant a header names, or one drawn by weight with `draw` in [0, 1).
    pub fn pick(&self, wanted: Option<&str>, draw: f64) -> Option<&LiveVariant> {
        if let Some(name) = wanted {
            return self.variants.iter().find(|v| v.name == name);
        }
        let total: f64 = self.variants.iter().map(|v| v.weight).sum();
        if total <= 0.0 {
            return self.variants.first();
        }
        let mut left = draw * total;
        for variant in &self.variants {
            if left < variant.weight {
                return Some(variant);
            }
            left -= variant.weight;
        }
        self.variants.iter().rev().find(|v| v.weight > 0.0)
    }
}

/// Everything served at one moment, and the registry state it was built from.
#[derive(Default)]
pub struct Snapshot {
    pub endpoints: HashMap<String, Arc<LiveEndpoint>>,
    /// Group and endpoint generations: equal fingerprints, nothing to do.
    fingerprint: Vec<(String, i64)>,
}

/// The served models, swapped as a whole.
pub struct Live {
    current: RwLock<Arc<Snapshot>>,
    /// Loaded models by group and version, so a swap reloads only what is new.
    cache: Mutex<HashMap<(GroupName, u32), Arc<Forecaster>>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            current: RwLock::new(Arc::new(Snapshot::default())),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// The group and endpoint generations, and the endpoints they were read with.
async fn fingerprint(
    pool: &AnyPool,
    registry: &Registry,
) -> Result<(Vec<(String, i64)>, Vec<EndpointSpec>), Error> {
    let mut print: Vec<(String, i64)> = registry
        .groups()
        .await?
        .into_iter()
        .map(|(g, n)| (format!("group:{g}"), n))
        .collect();
    let mut specs = Vec::new();
    for (spec, generation) in endpoints::list(pool).await? {
        print.push((format!("endpoint:{}", spec.name), generation));
        specs.push(spec);
    }
    Ok((print, specs))
}

impl Live {
    /// What is served now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("not poisoned").clone()
    }

    async fn model(
        &self,
        lake: &Lake,
        info: &models::registry::VersionInfo,
    ) -> Result<Arc<Forecaster>, String> {
        let key = (info.group.clone(), info.version);
        if let Some(model) = self.cache.lock().expect("not poisoned").get(&key) {
            return Ok(model.clone());
        }
        let model = ops::load_version(lake, info, Device::Cpu)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let model = tokio::task::spawn_blocking(move || model.check().map(|()| model))
            .await
            .map_err(|e| e.to_string())??;
        let model = Arc::new(model);
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(key, model.clone());
        Ok(model)
    }

    async fn build(
        &self,
        spec: &EndpointSpec,
        registry: &Registry,
        lake: &Lake,
        before: Option<&Arc<LiveEndpoint>>,
    ) -> Result<LiveEndpoint, Error> {
        let mut variants = Vec::new();
        for variant in &spec.variants {
            let Some(info) = registry.resolve(&spec.group, &variant.target).await? else {
                continue;
            };
            match self.model(lake, &info).await {
                Ok(model) => variants.push(LiveVariant {
                    name: variant.name.clone(),
                    weight: variant.weight,
                    version: info.version,
                    model,
                }),
                Err(reason) => {
                    tracing::error!(
                        endpoint = %spec.name,
                        variant = %variant.name,
                        group = %spec.group,
                        version = info.version,
                        error = %reason,
                        "model version cannot serve; keeping the variant's current version"
                    );
                    if let Some(old) =
                        before.and_then(|b| b.variants.iter().find(|v| v.name == variant.name))
                    {
                        variants.push(LiveVariant {
                            name: old.name.clone(),
                            weight: variant.weight,
                            version: old.version,
                            model: old.model.clone(),
                        });
                    }
                }
            }
        }
        Ok(LiveEndpoint {
            name: spec.name.clone(),
            group: spec.group.clone(),
            variants,
        })
    }

    /// Brings the snapshot up to date with the registry; `true` when it swapped.
    pub async fn refresh(&self, pool: &AnyPool, lake: &Lake) -> Result<bool, Error> {
        let registry = Registry::new(pool.clone());
        let (print, specs) = fingerprint(pool, &registry).await?;
        let before = self.snapshot();
        if print == before.fingerprint {
            return Ok(false);
        }
        let mut next = HashMap::new();
        for spec in specs {
            let live = self
                .build(&spec, &registry, lake, before.endpoints.get(&spec.name))
                .await?;
            next.insert(spec.name.clone(), Arc::new(live));
        }
        let used: Vec<(GroupName, u32)> = next
            .values()
            .flat_map(|e| e.variants.iter().map(|v| (e.group.clone(), v.version)))
            .collect();
        self.cache
            .lock()
            .expect("not poisoned")
            .retain(|key, _| used.contains(key));
        *self.current.write().expect("not poisoned") = Arc::new(Snapshot {
            endpoints: next,
            fingerprint: print,
        });
        Ok(true)
    }
}
