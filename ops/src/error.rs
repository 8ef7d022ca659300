//! The operations' one error: each variant says what the caller does about it. Adapters map it
//! once each: the CLI prints it, Task states get its ASL error name (the `From` below, which
//! `scheduler::tasks` uses), the HTTP layer turns it into a status code.

/// What a registry or catalog lookup did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A catalog table.
    Table,
    /// Anything else (a model group, version or alias, a report).
    Other,
}

/// Errors of the operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong: fix the named field and ask again. The reason names the field.
    #[error("{reason}")]
    InvalidInput { field: String, reason: String },

    /// What the request names does not exist.
    #[error("{what}")]
    NotFound { missing: Missing, what: String },

    /// The current state forbids the change (a registry move, a rejected version).
    #[error("{0}")]
    Conflict(String),

    /// The data does not add up (a conversion that does not reconcile): nothing was committed.
    #[error("{0}")]
    Reconciliation(String),

    /// A dependency failed (database, object store): the same request may succeed later.
    #[error("{0}")]
    Unavailable(String),

    /// Training ran and failed (diverged, could not start).
    #[error("{0}")]
    TrainingFailed(String),

    /// The operation failed for a reason retrying will not change.
    #[error("{0}")]
    Failed(String),
}

/// Result with the operations' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An invalid field of a request.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self::InvalidInput {
            reason: format!("{field}: {reason}"),
            field,
        }
    }

    /// A file the operation needs that cannot be read or written.
    pub(crate) fn io(path: &std::path::Path, err: impl std::fmt::Display) -> Self {
        Self::Failed(format!("{}: {err}", path.display()))
    }
}

impl From<Error> for asl::Failure {
    /// The ASL error name of an operation's error (`Sluice.TableNotFound`, ...), which Retry
    /// and Catch match: the one place they are chosen. It lives here, beside the error, because
    /// Rust allows the conversion only in the crate of one of the two types.
    fn from(err: Error) -> Self {
        let name = match &err {
            Error::InvalidInput { .. } => "Sluice.InvalidInput",
            Error::NotFound {
                missing: Missing::Table,
                ..
            } => "Sluice.TableNotFound",
            Error::NotFound { .. } => "Sluice.NotFound",
            Error::Conflict(_) => "Sluice.Conflict",
            Error::Reconciliation(_) => "Sluice.Reconciliation",
            Error::Unavailable(_) => "Sluice.Unavailable",
            Error::TrainingFailed(_) => "Sluice.TrainingFailed",
            Error::Failed(_) => "States.TaskFailed",
        };
        asl::Failure::new(name, err.to_string())
    }
}

impl From<jobs::Error> for Error {
    fn from(err: jobs::Error) -> Self {
        use jobs::Error as E;
        let text = err.to_string();
        match err {
            E::TableNotFound { .. } => Self::NotFound {
                missing: Missing::Table,
                what: text,
            },
            E::VersionNotFound { .. } | E::TypeChangeNotFound { .. } => Self::NotFound {
                missing: Missing::Other,
                what: text,
            },
            E::InvalidArgument { field, .. } => Self::InvalidInput {
                field: field.to_owned(),
                reason: text,
            },
            E::InvalidKey { .. } => Self::invalid("key", text),
            E::InvalidLakeUrl { .. } => Self::invalid("lake", text),
            E::UnsupportedDatabase { .. } => Self::invalid("database", text),
            E::Reconciliation { .. } | E::CrawlDisagrees { .. } => Self::Reconciliation(text),
            E::Conflict { .. } => Self::Conflict(text),
            E::ObjectStore(object_store::Error::NotFound { .. }) => Self::NotFound {
                missing: Missing::Other,
                what: text,
            },
            E::ObjectStore(_) | E::Database(_) | E::Migrate(_) => Self::Unavailable(text),
            E::CorruptRecord { .. } | E::Encode { .. } | E::Join(_) => Self::Failed(text),
        }
    }
}

impl From<models::Error> for Error {
    fn from(err: models::Error) -> Self {
        use models::Error as E;
        let text = err.to_string();
        match err {
            E::Input { field, .. } => Self::InvalidInput {
                field,
                reason: text,
            },
            E::InvalidArgument { field, .. } => Self::InvalidInput {
                field: field.to_owned(),
                reason: text,
            },
            E::NotFound { what } => Self::NotFound {
                missing: Missing::Other,
                what: format!("{what} not found"),
            },
            E::Conflict { .. } => Self::Conflict(text),
            E::Database(_) => Self::Unavailable(text),
            E::Training { .. } => Self::TrainingFailed(text),
            E::Shape { .. } | E::Io { .. } | E::Tensor(_) => Self::Failed(text),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Failed(format!("a blocking task failed: {err}"))
    }
}
