//! The store's error type: one enum for every failure, mapped to HTTP in `api::errors`.

use crate::model::Invalid;
use crate::secrets::SecretError;

/// What went wrong in the store. Messages name objects, never secret values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (I/O, corruption detected by sled).
    #[error("registry database: {0}")]
    Db(#[from] sled::Error),
    /// The request is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No such object.
    #[error("{kind} {name:?} does not exist")]
    NotFound {
        /// `template`, `installation` or `gateway`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Creating an object that exists.
    #[error("{kind} {name:?} already exists")]
    Exists {
        /// The kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Deleting an object others refer to.
    #[error("{kind} {name:?} is used by {by}")]
    InUse {
        /// The kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Who uses it, e.g. `installation "github"`.
        by: String,
    },
    /// A secret could not be opened.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A stored record does not parse.
    #[error("registry record {tree}/{key} is unreadable: {reason}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// The key, lossily as text.
        key: String,
        /// Why.
        reason: String,
    },
    /// The database was written by a newer build.
    #[error("registry schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// In the database.
        found: u64,
        /// Of this build.
        supported: u64,
    },
}
