//! The stored drift reports, read back (`sluice drift show|list`, the console's drift pages).

use jobs::drift::store::{self, StoredReport};

use crate::{Error, Missing, Ops, Result};

impl Ops {
    /// The latest stored drift reports, newest first.
    pub async fn drift_reports(&self, limit: i64) -> Result<Vec<StoredReport>> {
        Ok(store::list(self.catalog().await?, limit).await?)
    }

    /// A stored drift report by id, or the latest (of a subject, when given).
    pub async fn drift_report(
        &self,
        id: Option<&str>,
        subject: Option<&str>,
    ) -> Result<StoredReport> {
        match store::get(self.catalog().await?, id, subject).await {
            Err(jobs::Error::InvalidArgument {
                field: "drift report",
                reason,
            }) => Err(Error::NotFound {
                missing: Missing::Other,
                what: reason,
            }),
            found => Ok(found?),
        }
    }
}
