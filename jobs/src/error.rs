//! The crate's one error type: variants say what the caller can do about them.

/// Errors of the lake, the catalog and the jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake URL could not be understood or opened.
    #[error("invalid lake url {url:?}: {reason}")]
    InvalidLakeUrl { url: String, reason: String },

    /// A key that would leave the lake root (`..`, an absolute path, an empty segment).
    #[error("object key {key:?} is not allowed: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// The object store failed (network, permissions, a missing object).
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    /// The database URL names no supported backend.
    #[error("unsupported database url {url:?}: expected sqlite:// or postgres://")]
    UnsupportedDatabase { url: String },

    /// The catalog database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),

    /// Applying migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// No table of that name in the catalog database.
    #[error("table {table:?} not found in catalog database {database:?}")]
    TableNotFound { database: String, table: String },

    /// No such schema version of a table.
    #[error("table {table:?} has no schema version {version}")]
    VersionNotFound { table: String, version: i64 },

    /// No pending type change of that column to that type.
    #[error("table {table:?} has no pending change of column {column:?} to {to}{pending}")]
    TypeChangeNotFound {
        table: String,
        column: String,
        to: String,
        /// The pending changes there are, as a sentence tail (`; pending: pm25 -> string`).
        pending: String,
    },

    /// A stored document (schema, report) could not be read back.
    #[error("stored {what} is unreadable: {reason}")]
    CorruptRecord { what: &'static str, reason: String },

    /// An argument is out of its range (a table name, a generator setting).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// A conversion's counts do not add up: nothing was committed.
    #[error(
        "conversion of {object} does not reconcile: {read} read, {written} written, {quarantined} quarantined"
    )]
    Reconciliation {
        object: String,
        read: u64,
        written: u64,
        quarantined: u64,
    },

    /// Conversion read another number of records in an object than the crawler counted: the
    /// object changed since its crawl, or a decoder lost or invented records. Nothing committed.
    #[error(
        "conversion of {object} does not reconcile with its crawl: the crawler counted {crawled} records, conversion read {read} (recrawl it if it changed)"
    )]
    CrawlDisagrees {
        object: String,
        crawled: u64,
        read: u64,
    },

    /// Another run changed what this one was about to replace: nothing was committed.
    #[error("{what} conflict: {reason}")]
    Conflict { what: &'static str, reason: String },

    /// Encoding Arrow data or a Parquet file failed.
    #[error("encoding {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    /// A blocking task panicked or was cancelled.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
