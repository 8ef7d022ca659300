//! After the commit: moving staged files into place (and finishing what a stopped run left
//! staged), and `vacuum`, which removes what no committed run owns.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::catalog::conversion::CuratedFile;
use crate::convert::FailPoint;
use crate::lake::{Lake, LakeKey};
use crate::{Error, Result};

/// Where a publish may be told to stop (fault injection for the exactly-once tests).
pub type StopAfter = Option<usize>;

/// Moves staged files into place and marks them published. Idempotent: a file already moved (its
/// staging object gone, its final object present) is only marked.
pub async fn publish(
    lake: &Lake,
    catalog: &Catalog,
    files: &[CuratedFile],
    stop_after: StopAfter,
) -> Result<usize> {
    let mut moved = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        if stop_after == Some(index) {
            catalog.mark_published(&moved).await?;
            return Err(Error::InvalidArgument {
                field: "fail point",
                reason: format!("publish stopped after {index} file(s)"),
            });
        }
        let (staging, path) = (
            lake.path(&LakeKey::parse(&file.staging_path)?),
            lake.path(&LakeKey::parse(&file.path)?),
        );
        match lake.store().rename(&staging, &path).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) if lake.store().head(&path).await.is_ok() => {
            }
            Err(err) => return Err(err.into()),
        }
        moved.push(file.id);
    }
    catalog.mark_published(&moved).await?;
    Ok(moved.len())
}

/// What follows a run's commit: stops at [`FailPoint::AfterCommit`] when a test asks, then moves
/// the table's staged files into place (stopping after one at [`FailPoint::MidPublish`]).
pub(crate) async fn after_commit(
    lake: &Lake,
    catalog: &Catalog,
    table_id: i64,
    stops_at: impl Fn(FailPoint) -> bool,
) -> Result<usize> {
    if stops_at(FailPoint::AfterCommit) {
        return Err(FailPoint::AfterCommit.stopped());
    }
    let staged = catalog.unpublished_files(Some(table_id)).await?;
    let stop = stops_at(FailPoint::MidPublish).then_some(1);
    publish(lake, catalog, &staged, stop).await
}

/// What `vacuum` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumReport {
    /// Files of committed runs that were still staged, now in place.
    pub files_published: usize,
    /// Runs that never committed, whose staged and quarantined objects were deleted.
    pub runs_cleaned: Vec<i64>,
    pub objects_deleted: usize,
    /// Replaced files (reprocess, compaction) deleted.
    pub replaced_files_deleted: usize,
}

async fn delete_prefix(lake: &Lake, prefix: &LakeKey) -> Result<usize> {
    let path = lake.path(prefix);
    let keys: Vec<object_store::path::Path> = lake
        .store()
        .list(Some(&path))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    for key in &keys {
        match lake.store().delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(keys.len())
}

/// Finishes committed runs, then removes the staging and quarantine objects of runs that never
/// committed and started more than `grace_ms` ago, and the files replaced by later runs.
pub async fn vacuum(lake: &Lake, catalog: &Catalog, grace_ms: i64) -> Result<VacuumReport> {
    let mut report = VacuumReport {
        files_published: publish(lake, catalog, &catalog.unpublished_files(None).await?, None)
            .await?,
        ..VacuumReport::default()
    };
    for run in catalog
        .abandoned_runs(crate::catalog::now_ms() - grace_ms)
        .await?
    {
        let staging = LakeKey::parse(&format!("{}/_staging/run={}", run.dest, run.id))?;
        let quarantine = LakeKey::parse(&format!("quarantine/{}/run={}", run.table, run.id))?;
        report.objects_deleted +=
            delete_prefix(lake, &staging).await? + delete_prefix(lake, &quarantine).await?;
        catalog.mark_vacuumed(run.id).await?;
        report.runs_cleaned.push(run.id);
    }
    let removed = catalog.removed_files().await?;
    for file in &removed {
        for key in [&file.path, &file.staging_path] {
            match lake.store().delete(&lake.path(&LakeKey::parse(key)?)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    catalog
        .purge_files(&removed.iter().map(|f| f.id).collect::<Vec<_>>())
        .await?;
    report.replaced_files_deleted = removed.len();
    Ok(report)
}
