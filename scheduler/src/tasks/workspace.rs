//! Work folders in the lake. A job's path field may name a lake key, `lake:work/night-1/dataset`,
//! so that a step another machine takes over finds what earlier steps wrote without a shared
//! disk. Inputs are fetched into a scratch folder before the job runs; output folders are written
//! there and copied to the lake after it succeeds; paths in the job's output point back into the
//! lake. Plain paths are left alone.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use jobs::lake::{Lake, LakeKey};
use ops::request::{PathFields, PathRole};
use serde_json::Value;

use super::Failure;

/// How a path field names a lake key.
pub const LAKE: &str = "lake:";

fn unavailable(err: impl std::fmt::Display) -> Failure {
    Failure::new("Sluice.Unavailable", err.to_string())
}

fn invalid(field: &str, err: impl std::fmt::Display) -> Failure {
    Failure::new("Sluice.InvalidInput", format!("{field}: {err}"))
}

/// The lake key a path names, if it names one.
fn lake_key(path: &Path) -> Option<&str> {
    path.to_str().and_then(|p| p.strip_prefix(LAKE))
}

/// A job's scratch folder, the output folders to copy to the lake, and the inputs fetched.
pub struct Workspace {
    scratch: tempfile::TempDir,
    outputs: Vec<(PathBuf, LakeKey)>,
    /// Where each lake input was fetched, so that an output naming it (a blend's list of
    /// candidates) names the lake key again.
    inputs: Vec<(PathBuf, LakeKey)>,
}

impl Workspace {
    /// Whether any path field of the request names a lake key.
    pub fn wanted(request: &mut impl PathFields) -> bool {
        request
            .path_fields()
            .iter()
            .any(|field| lake_key(field.path).is_some())
    }

    /// Fetches the request's lake inputs and points its lake outputs at scratch folders: the
    /// request's paths become local ones.
    pub async fn prepare(lake: &Lake, request: &mut impl PathFields) -> Result<Self, Failure> {
        let scratch = tempfile::tempdir().map_err(unavailable)?;
        let mut workspace = Self {
            scratch,
            outputs: Vec::new(),
            inputs: Vec::new(),
        };
        for (index, field) in request.path_fields().into_iter().enumerate() {
            let Some(key) = lake_key(field.path) else {
                continue;
            };
            let key = LakeKey::parse(key).map_err(|e| invalid(field.name, e))?;
            let path = workspace
                .scratch
                .path()
                .join(format!("{index}-{}", field.name));
            match field.role {
                PathRole::ReadsFile => {
                    let bytes = lake.get(&key).await.map_err(|e| invalid(field.name, e))?;
                    tokio::fs::write(&path, bytes).await.map_err(unavailable)?;
                    workspace.inputs.push((path.clone(), key));
                }
                PathRole::ReadsFolder => {
                    fetch_folder(lake, &key, &path).await?;
                    workspace.inputs.push((path.clone(), key));
                }
                PathRole::WritesFolder => {
                    tokio::fs::create_dir_all(&path)
                        .await
                        .map_err(unavailable)?;
                    workspace.outputs.push((path.clone(), key));
                }
            }
            *field.path = path;
        }
        Ok(workspace)
    }

    /// Copies the output folders to the lake; returns the job's output with their paths, and
    /// those of the inputs fetched, as lake keys.
    pub async fn finish(self, lake: &Lake, output: Value) -> Result<Value, Failure> {
        let mut output = output;
        for (dir, key) in &self.outputs {
            put_folder(lake, dir, key).await?;
        }
        for (path, key) in self.outputs.iter().chain(&self.inputs) {
            let (local, remote) = (path.display().to_string(), format!("{LAKE}{key}"));
            rewrite(&mut output, &local, &remote);
        }
        Ok(output)
    }
}

/// Every object under `key` into `dir`, by its name relative to `key`.
async fn fetch_folder(lake: &Lake, key: &LakeKey, dir: &Path) -> Result<(), Failure> {
    let prefix = lake.path(key);
    let objects: Vec<_> = lake
        .store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(unavailable)?;
    if objects.is_empty() {
        return Err(invalid(key.as_str(), "no objects under this lake key"));
    }
    for meta in objects {
        let location = meta.location.to_string();
        let name = location
            .strip_prefix(key.as_str())
            .unwrap_or(&location)
            .trim_start_matches('/');
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(unavailable)?;
        }
        let object = LakeKey::parse(&location).map_err(unavailable)?;
        let bytes = lake.get(&object).await.map_err(unavailable)?;
        tokio::fs::write(&path, bytes).await.map_err(unavailable)?;
    }
    Ok(())
}

/// Every file under `dir` to the lake under `key`.
async fn put_folder(lake: &Lake, dir: &Path, key: &LakeKey) -> Result<(), Failure> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&folder).await.map_err(unavailable)?;
        while let Some(entry) = entries.next_entry().await.map_err(unavailable)? {
            let path = entry.path();
            if entry.file_type().await.map_err(unavailable)?.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path
                .strip_prefix(dir)
                .map_err(unavailable)?
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = tokio::fs::read(&path).await.map_err(unavailable)?;
            let object = key.join(&name).map_err(unavailable)?;
            lake.put(&object, bytes.into()).await.map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Replaces the `local` prefix of every string in `value` with `remote`.
fn rewrite(value: &mut Value, local: &str, remote: &str) {
    match value {
        Value::String(text) => {
            if let Some(rest) = text.strip_prefix(local) {
                *text = format!("{remote}{rest}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, local, remote)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite(v, local, remote)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(input: Value) -> ops::TrainRequest {
        ops::request::from_json(input).unwrap()
    }

    #[tokio::test]
    async fn lake_paths_are_fetched_and_outputs_copied_back() {
        let lake = Lake::in_memory();
        let put = |key: &str, text: &str| {
            let (lake, key, text) = (lake.clone(), key.to_owned(), text.to_owned());
            async move {
                lake.put(&LakeKey::parse(&key).unwrap(), text.into_bytes().into())
                    .await
                    .unwrap();
            }
        };
        put("work/a/train.jsonl", "train").await;
        put("work/a/model/config.json", "{}").await;
        let mut request = train(serde_json::json!({
            "train": "lake:work/a/train.jsonl", "test": "/local/test.jsonl",
            "model_dir": "lake:work/b/model"}));
        assert!(Workspace::wanted(&mut request));
        let workspace = Workspace::prepare(&lake, &mut request).await.unwrap();
        assert_eq!(std::fs::read_to_string(&request.train).unwrap(), "train");
        assert_eq!(
            request.test.as_deref(),
            Some(Path::new("/local/test.jsonl")),
            "plain paths stay"
        );
        std::fs::write(request.model_dir.join("model.safetensors"), "w").unwrap();
        let output = serde_json::json!({"model_dir": request.model_dir, "epochs": 3,
            "train": request.train, "test": request.test});
        let output = workspace.finish(&lake, output).await.unwrap();
        assert_eq!(output["model_dir"], "lake:work/b/model");
        // An input named in the output names its lake key again (a blend lists its candidates).
        assert_eq!(output["train"], "lake:work/a/train.jsonl");
        assert_eq!(output["test"], "/local/test.jsonl");
        let copied = lake
            .get(&LakeKey::parse("work/b/model/model.safetensors").unwrap())
            .await
            .unwrap();
        assert_eq!(&copied[..], b"w");

        let mut plain = train(serde_json::json!({
            "train": "/t.jsonl", "model_dir": "/m"}));
        assert!(!Workspace::wanted(&mut plain));

        let publish =
            |input: Value| -> ops::PublishRequest { ops::request::from_json(input).unwrap() };
        let mut request = publish(
            serde_json::json!({"group": "g", "model_dir": "lake:work/a/model",
            "test": "lake:work/a/train.jsonl"}),
        );
        let _kept = Workspace::prepare(&lake, &mut request).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(request.model_dir.as_ref().unwrap().join("config.json"))
                .unwrap(),
            "{}"
        );
        // Each of several candidates is fetched.
        put("work/b/model/config.json", "{\"b\": 1}").await;
        let mut request = publish(serde_json::json!({"group": "g", "test": "/t.jsonl",
            "candidates": ["lake:work/a/model", "lake:work/b/model"]}));
        let _kept = Workspace::prepare(&lake, &mut request).await.unwrap();
        let fetched: Vec<String> = request
            .candidates
            .iter()
            .map(|dir| std::fs::read_to_string(dir.join("config.json")).unwrap())
            .collect();
        assert_eq!(fetched, ["{}", "{\"b\": 1}"]);
        let mut missing = publish(
            serde_json::json!({"group": "g", "model_dir": "lake:work/none",
            "test": "/t.jsonl"}),
        );
        let err = Workspace::prepare(&lake, &mut missing).await.err().unwrap();
        assert_eq!(err.error, "Sluice.InvalidInput");
    }
}
