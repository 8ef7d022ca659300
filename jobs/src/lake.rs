//! The lake: every object sluice reads or writes goes through one [`ObjectStore`] rooted at the
//! lake URL. Keys handed to the lake are validated by [`LakeKey::parse`], so no key escapes the
//! root, whatever the backend (`file://` directory, `s3://bucket/prefix`, `memory://`).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Error, Result};

/// S3 settings that are not part of the URL; each falls back to the usual `AWS_*` variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (an S3-compatible server on loopback).
    pub allow_http: bool,
}

/// A validated object key, relative to the lake root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LakeKey(String);

impl LakeKey {
    /// Parses a relative key: `/`-separated, no empty, `.` or `..` segment, no backslash or
    /// control character. An empty string is the lake root itself.
    pub fn parse(key: &str) -> Result<Self> {
        let trimmed = key.trim_end_matches('/');
        let invalid = |reason| Error::InvalidKey {
            key: key.to_owned(),
            reason,
        };
        if trimmed.starts_with('/') {
            return Err(invalid("keys are relative to the lake root"));
        }
        if trimmed.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(invalid(
                "backslashes and control characters are not allowed",
            ));
        }
        if !trimmed.is_empty() {
            for segment in trimmed.split('/') {
                match segment {
                    "" => return Err(invalid("empty path segment")),
                    "." | ".." => return Err(invalid("'.' and '..' segments are not allowed")),
                    _ => {}
                }
            }
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The key as a string (no leading or trailing slash).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Appends a relative key.
    pub fn join(&self, rest: &str) -> Result<Self> {
        if self.0.is_empty() {
            Self::parse(rest)
        } else {
            Self::parse(&format!("{}/{rest}", self.0))
        }
    }

    fn path(&self) -> Path {
        Path::from(self.0.as_str())
    }
}

impl std::fmt::Display for LakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lake: an object store and the URL it was opened from.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Lake {
    /// Opens a lake URL: `file://DIR` (relative paths resolve against the working directory and
    /// the directory is created), `s3://bucket[/prefix]`, or `memory://` (a fresh empty store).
    pub fn open(url: &str, s3: &S3Options) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLakeUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected file://, s3:// or memory://".into()))?;
        let store: Arc<dyn ObjectStore> = match scheme {
            "memory" => Arc::new(InMemory::new()),
            "file" => {
                let dir = std::path::absolute(if rest.is_empty() { "." } else { rest })
                    .map_err(|err| invalid(err.to_string()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|err| invalid(format!("cannot create {}: {err}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|err| invalid(err.to_string()))?;
                Arc::new(fs.with_automatic_cleanup(true))
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("an s3 url names a bucket".into()));
                }
                crate::install_tls();
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                if s3.allow_http {
                    builder = builder.with_allow_http(true);
                }
                let s3_store = builder.build().map_err(|err| invalid(err.to_string()))?;
                let prefix = LakeKey::parse(prefix)?;
                if prefix.as_str().is_empty() {
                    Arc::new(s3_store)
                } else {
                    Arc::new(PrefixStore::new(s3_store, prefix.path()))
                }
            }
            other => return Err(invalid(format!("unsupported scheme {other:?}"))),
        };
        Ok(Self {
            store,
            url: url.to_owned(),
        })
    }

    /// A fresh in-memory lake (tests).
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            url: "memory://".into(),
        }
    }

    /// The URL the lake was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last path segment of the lake URL (`file://data/landing` → `landing`), used to name a
    /// table whose objects lie directly under the lake root.
    pub fn root_name(&self) -> Option<&str> {
        let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
        rest.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|name| !name.is_empty() && *name != ".")
    }

    /// The underlying store, rooted at the lake root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of a validated key.
    pub fn path(&self, key: &LakeKey) -> Path {
        key.path()
    }

    /// Writes an object.
    pub async fn put(&self, key: &LakeKey, bytes: bytes::Bytes) -> Result<()> {
        self.store.put(&key.path(), bytes.into()).await?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &LakeKey) -> Result<bytes::Bytes> {
        Ok(self.store.get(&key.path()).await?.bytes().await?)
    }
}

/// A Parquet object of the lake, read with range requests: the footer (the end of the object,
/// then the metadata where it is longer than the first read), then only the column chunks a
/// reader asks for. The crawler reads footers through it and conversion row groups.
#[derive(Clone)]
pub struct ParquetRanges {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

impl ParquetRanges {
    pub fn new(lake: &Lake, path: Path, size: u64) -> Self {
        Self {
            store: lake.store.clone(),
            path,
            size,
        }
    }

    /// The object's Parquet metadata, from its footer.
    pub async fn metadata(
        &self,
    ) -> parquet::errors::Result<parquet::file::metadata::ParquetMetaData> {
        parquet::file::metadata::ParquetMetaDataReader::new()
            .with_prefetch_hint(Some(64 << 10))
            .load_and_finish(self.clone(), self.size)
            .await
    }

    fn range(
        &self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'static, parquet::errors::Result<bytes::Bytes>> {
        use futures::FutureExt;
        let (store, path) = (self.store.clone(), self.path.clone());
        async move {
            store
                .get_range(&path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }
}

impl parquet::arrow::async_reader::MetadataFetch for ParquetRanges {
    fn fetch(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        self.range(range)
    }
}

impl parquet::arrow::async_reader::AsyncFileReader for ParquetRanges {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        self.range(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        use futures::FutureExt;
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        use futures::FutureExt;
        async move { self.metadata().await.map(Arc::new) }.boxed()
    }
}

/// A Parquet object's rows as JSON objects, column by column (a distributed Map's `ItemReader`
/// with `"InputType": "PARQUET"`); at most `limit` rows are read.
pub fn parquet_rows(bytes: bytes::Bytes, limit: usize) -> Result<Vec<serde_json::Value>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| crate::Error::InvalidArgument {
            field: "parquet",
            reason: format!("not a Parquet file: {e}"),
        })?
        .build()
        .map_err(|e| crate::Error::InvalidArgument {
            field: "parquet",
            reason: e.to_string(),
        })?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| crate::Error::InvalidArgument {
            field: "parquet",
            reason: e.to_string(),
        })?;
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer
            .write(&batch)
            .and_then(|()| writer.finish())
            .map_err(|e| crate::Error::InvalidArgument {
                field: "parquet",
                reason: format!("a row cannot be written as JSON: {e}"),
            })?;
        let written = writer.into_inner();
        if written.is_empty() {
            continue;
        }
        if let Ok(serde_json::Value::Array(batch_rows)) = serde_json::from_slice(&written) {
            rows.extend(batch_rows);
        }
        if rows.len() >= limit {
            rows.truncate(limit);
            break;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        for bad in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\b",
            "a/\u{0}",
        ] {
            assert!(LakeKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            LakeKey::parse("landing/2024/").unwrap().as_str(),
            "landing/2024"
        );
        assert_eq!(LakeKey::parse("").unwrap().as_str(), "");
        assert!(LakeKey::parse("a").unwrap().join("../b").is_err());
    }

    #[test]
    fn lake_urls_are_parsed() {
        assert!(Lake::open("ftp://x", &S3Options::default()).is_err());
        assert!(Lake::open("lake", &S3Options::default()).is_err());
        assert!(Lake::open("s3://", &S3Options::default()).is_err());
        assert!(Lake::open("s3://bucket/../x", &S3Options::default()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(
            &format!("file://{}/landing", dir.path().display()),
            &S3Options::default(),
        )
        .unwrap();
        assert_eq!(lake.root_name(), Some("landing"));
        assert!(dir.path().join("landing").is_dir());
    }

    #[tokio::test]
    async fn file_lake_round_trips_objects_inside_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(
            &format!("file://{}", dir.path().display()),
            &S3Options::default(),
        )
        .unwrap();
        let key = LakeKey::parse("a/b/c.txt").unwrap();
        lake.put(&key, bytes::Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a/b/c.txt")).unwrap(),
            b"hello"
        );
        assert_eq!(lake.get(&key).await.unwrap().as_ref(), b"hello");
    }
}
