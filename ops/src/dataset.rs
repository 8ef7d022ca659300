//! Datasets: DeepAR series from a curated table, as SageMaker JSON lines with a manifest
//! (`sluice dataset`, `sluice:dataset`).

use std::path::{Path, PathBuf};

use jobs::dataset::{Aggregation, DatasetSpec, build, format_start, load};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::one_or_many;
use crate::{Error, Ops, Result};

/// `{"table", "item", "target", "prediction_length", "out", "timestamp"?: "ts", "freq"?: "1h",
/// "agg"?: "mean", "dynamic"?, "cat"?, "test_windows"?: 1, "catalog"?, "only_items"?}`; `item`,
/// `dynamic` and `cat` take a column or a list of columns; `only_items` keeps those series (a
/// group's dataset, as a distributed Map over groups builds one per child).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRequest {
    /// A curated table (or a crawled table, read through its curated table).
    pub table: String,
    /// The columns that name a series.
    #[serde(deserialize_with = "one_or_many")]
    pub item: Vec<String>,
    /// The column forecast.
    pub target: String,
    /// Points forecast, and the length of each test window.
    pub prediction_length: usize,
    /// Folder for `train.jsonl`, `test.jsonl` and `dataset.json`.
    pub out: PathBuf,
    #[serde(default = "default_timestamp")]
    pub timestamp: String,
    /// `1h`, `15min`, `1d`, `W`, `M`, ...
    #[serde(default = "default_freq")]
    pub freq: String,
    /// How the points of a time bucket become one value.
    #[serde(default = "default_agg")]
    pub agg: Aggregation,
    /// Columns given to the model as dynamic features.
    #[serde(default, deserialize_with = "one_or_many")]
    pub dynamic: Vec<String>,
    /// Columns given to the model as categories.
    #[serde(default, deserialize_with = "one_or_many")]
    pub cat: Vec<String>,
    /// Rolling test windows after the cut.
    #[serde(default = "default_test_windows")]
    pub test_windows: usize,
    #[serde(default)]
    pub catalog: Option<String>,
    /// Only these series, by item id; none: every series.
    #[serde(default)]
    pub only_items: Vec<String>,
}

fn default_timestamp() -> String {
    "ts".to_owned()
}

fn default_freq() -> String {
    "1h".to_owned()
}

fn default_agg() -> Aggregation {
    Aggregation::Mean
}

fn default_test_windows() -> usize {
    1
}

impl DatasetRequest {
    fn spec(&self) -> DatasetSpec {
        DatasetSpec {
            item_columns: self.item.clone(),
            timestamp: self.timestamp.clone(),
            target: self.target.clone(),
            frequency: self.freq.clone(),
            aggregation: self.agg,
            dynamic_features: self.dynamic.clone(),
            categorical_features: self.cat.clone(),
            prediction_length: self.prediction_length,
            test_windows: self.test_windows,
            only_items: self.only_items.clone(),
        }
    }
}

/// An item left out of a dataset, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedItem {
    pub item: String,
    pub reason: String,
}

/// A dataset's manifest (`dataset.json`, and the `sluice:dataset` task's output). A persisted
/// format: fields are only added, and `format` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    pub format: u32,
    /// The snapshot's id (`ds-...`): the same spec over the same files gives the same id, and
    /// the registry records it as a model's `dataset_snapshot`.
    pub snapshot_id: String,
    pub table: String,
    pub train: PathBuf,
    pub test: PathBuf,
    pub spec: DatasetSpec,
    /// DeepAR's `time_freq`.
    pub time_freq: String,
    /// Where training ends and the first test window starts (`YYYY-MM-DD HH:MM:SS`).
    pub cut: String,
    pub rows_read: usize,
    pub items: usize,
    pub train_lines: usize,
    pub test_lines: usize,
    /// Per categorical feature, its values in index order.
    pub categories: Vec<Vec<String>>,
    pub dropped: Vec<DroppedItem>,
    /// Values of older files that could not be cast to the type the dataset reads their column
    /// as (a column whose type a person changed), per column: read as missing.
    #[serde(default)]
    pub uncastable: Vec<(String, u64)>,
    /// The catalog database the table was read from (the default one when none).
    #[serde(default)]
    pub catalog: Option<String>,
}

impl DatasetManifest {
    pub const FORMAT: u32 = 1;
    /// The manifest's file name in a dataset folder.
    pub const FILE: &str = "dataset.json";

    /// The manifest of the dataset a training file belongs to, when it sits in its folder.
    pub fn beside(train: &Path) -> Option<Self> {
        Self::in_folder_of(train).filter(|m| m.train.file_name() == train.file_name())
    }

    /// The manifest of the dataset a file (its training or its test lines) belongs to, when it
    /// sits in its folder.
    pub fn of_file(file: &Path) -> Option<Self> {
        Self::in_folder_of(file).filter(|m| {
            m.train.file_name() == file.file_name() || m.test.file_name() == file.file_name()
        })
    }

    fn in_folder_of(file: &Path) -> Option<Self> {
        let folder = file.parent()?;
        serde_json::from_slice(&std::fs::read(folder.join(Self::FILE)).ok()?).ok()
    }
}

fn write_lines(path: &Path, lines: &[Value]) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

impl Ops {
    /// Builds the dataset into the request's folder; returns (and writes) its manifest.
    pub async fn dataset(&self, request: &DatasetRequest) -> Result<DatasetManifest> {
        if request.item.is_empty() {
            return Err(Error::invalid("item", "names at least one column"));
        }
        let spec = request.spec();
        let curated = self.curated_lake()?;
        let db = self.catalog_db(request.catalog.as_deref())?;
        let jobs::dataset::Loaded {
            frame,
            snapshot_id: snapshot,
            uncastable,
        } = load(&curated, self.catalog().await?, &db, &request.table, &spec).await?;
        let rows_read = frame.height();
        let dataset = {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || build(frame, &spec, snapshot)).await??
        };
        let (train, test) = dataset.export();
        let out = &request.out;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let manifest = DatasetManifest {
            format: DatasetManifest::FORMAT,
            snapshot_id: dataset.snapshot_id.clone(),
            table: request.table.clone(),
            train: out.join("train.jsonl"),
            test: out.join("test.jsonl"),
            spec: dataset.spec.clone(),
            time_freq: dataset.time_freq.clone(),
            cut: format_start(dataset.cut_ms),
            rows_read,
            items: dataset.items.len(),
            train_lines: train.len(),
            test_lines: test.len(),
            categories: dataset.categories.clone(),
            dropped: dataset
                .dropped
                .iter()
                .map(|(item, reason)| DroppedItem {
                    item: item.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            uncastable: uncastable.into_iter().collect(),
            catalog: request.catalog.clone(),
        };
        write_lines(&manifest.train, &train)?;
        write_lines(&manifest.test, &test)?;
        let path = out.join(DatasetManifest::FILE);
        let text = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(manifest)
    }
}
