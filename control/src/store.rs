//! The registry's storage, and the only code that touches sled, so the engine could be
//! swapped behind these methods.
//!
//! Trees: `templates`, `installations`, `gateways` (with their tool assignments), `secrets`
//! (sealed values, see `secrets`), `caller_credentials` (per-caller upstream secrets, sealed
//! likewise, see `store::callers`), `audit` (one entry per write, keyed by version) and `meta` (schema version and
//! the global version).
//!
//! Every write is one sled transaction over every tree it touches plus `meta` and `audit`:
//! the object, the version bump and the audit entry commit together or not at all, so a crash
//! at any instant leaves a state where `version` equals the number of audit entries. Writers
//! are serialised by a lock (a control plane writes rarely; serialising makes versions
//! unique and dense without transaction retries), and readers that need several trees to
//! agree (the snapshot, the audit check) hold the same lock for reading.
//!
//! Durability: a committed write is in sled's in-memory log until flushed; sled flushes in the
//! background every 500 ms. The admin API calls [`Store::flush_through`] before it answers or
//! tells proxies, so an acknowledged write survives a crash of the process or the machine;
//! a crash before that loses the write whole, never half of it. Flushes are blocking and
//! serialised, with group commit (a writer whose version an earlier flush covered does not
//! flush again): sled 0.34's `flush_async` deadlocks when called concurrently
//! (spacejam/sled#1308).

mod callers;
mod error;
mod migrate;
mod registry;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_callers;

pub use error::StoreError;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional as _};
use sluice_config::Snapshot;

use crate::model::Template;
use crate::render;
use crate::secrets::{KeyRing, Sealed};

/// The layout this build reads and writes. See `migrate` for the history.
pub const SCHEMA_VERSION: u64 = 2;

const META_SCHEMA: &[u8] = b"schema_version";
const META_VERSION: &[u8] = b"version";

/// A stored object with the version of the write that last changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// Global version of the write that stored it.
    pub version: u64,
    /// Unix time of that write, seconds.
    pub updated_at: u64,
    /// The object.
    pub item: T,
}

/// One audit log entry. Holds names and kinds, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The global version this write produced.
    pub version: u64,
    /// Unix time, seconds.
    pub at: u64,
    /// Who: the admin token's name, or `control` for its own maintenance.
    pub actor: String,
    /// `create`, `replace`, `delete`, `assign`, `unassign`, `migrate`, `rotate_keys`.
    pub action: String,
    /// `template`, `installation`, `gateway`, `caller_secret`, `registry`.
    pub kind: String,
    /// The object's name.
    pub name: String,
}

/// Whether a put may create, replace, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fails with [`StoreError::Exists`] if present.
    Create,
    /// Fails with [`StoreError::NotFound`] if absent.
    Replace,
}

impl Mode {
    fn action(self) -> &'static str {
        match self {
            Mode::Create => "create",
            Mode::Replace => "replace",
        }
    }
}

#[derive(Clone, Copy)]
enum T {
    Templates = 0,
    Installations = 1,
    Gateways = 2,
    Secrets = 3,
    /// Per-caller upstream secrets (see `callers`).
    CallerCredentials = 4,
    Audit = 5,
    Meta = 6,
    /// Self-hosted installations' run states, written by the orchestrator.
    Status = 7,
    /// Discovery's cache of what each server offers (not versioned).
    Discovered = 8,
}

const TREE_NAMES: [&str; 9] = [
    "templates",
    "installations",
    "gateways",
    "secrets",
    "caller_credentials",
    "audit",
    "meta",
    "status",
    "discovered",
];

/// One change inside a write.
struct Op {
    tree: T,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

impl Op {
    fn put(tree: T, key: &str, value: &impl Serialize) -> Op {
        Op {
            tree,
            key: key.as_bytes().to_vec(),
            value: Some(serde_json::to_vec(value).expect("registry records serialise")),
        }
    }

    fn remove(tree: T, key: &str) -> Op {
        Op {
            tree,
            key: key.as_bytes().to_vec(),
            value: None,
        }
    }
}

/// The registry database.
pub struct Store {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    keys: KeyRing,
    /// Held for writing by writers, for reading by multi-tree readers.
    consistency: RwLock<()>,
    /// Serialises flushes; holds the version known to be on disk.
    flushed: Mutex<u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn read_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Key of a secret value in the `secrets` tree, also its associated data.
/// Opens the sled database. sled's background flusher can hold the directory's file lock for
/// a moment after the previous handle in this process was dropped (a restart of control in
/// the same process, or a test reopening a store), so a lock refusal is retried for up to
/// [`LOCK_WAIT`]; another process holding it still fails, after that wait.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// How long [`open_db`] waits for a lock the previous handle may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn secret_place(installation: &str, field: &str) -> String {
    format!("{installation}/{field}")
}

impl Store {
    /// Opens (or creates) the registry under `path`, migrates an older layout, and re-seals
    /// secrets still under an old key. Each of those steps is one audited write.
    pub fn open(path: &Path, keys: KeyRing) -> Result<Store, StoreError> {
        let db = open_db(path)?;
        let trees = TREE_NAMES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store {
            db,
            trees,
            keys,
            consistency: RwLock::new(()),
            flushed: Mutex::new(0),
        };
        migrate::run(&store)?;
        store.reseal_stale_secrets()?;
        Ok(store)
    }

    fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t as usize]
    }

    /// The global version: the number of writes ever committed.
    pub fn version(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.tree(T::Meta).get(META_VERSION)?))
    }

    /// The schema version of the layout on disk.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.tree(T::Meta).get(META_SCHEMA)?))
    }

    /// Blocks until every write up to `version` is on disk; one flush covers every write
    /// committed before it started, so concurrent writers share it.
    pub fn flush_through(&self, version: u64) -> Result<(), StoreError> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        if *flushed >= version {
            return Ok(());
        }
        let covered = self.version()?;
        self.db.flush()?;
        *flushed = covered;
        Ok(())
    }

    /// Blocks until every committed write is on disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_through(self.version()?)
    }

    fn decode<V: DeserializeOwned>(t: T, key: &[u8], bytes: &[u8]) -> Result<V, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            tree: TREE_NAMES[t as usize],
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }

    fn get<V: DeserializeOwned>(&self, t: T, key: &str) -> Result<Option<V>, StoreError> {
        match self.tree(t).get(key)? {
            Some(v) => Ok(Some(Self::decode(t, key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn all<V: DeserializeOwned>(&self, t: T) -> Result<Vec<V>, StoreError> {
        self.tree(t)
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Self::decode(t, &k, &v)
            })
            .collect()
    }

    /// Commits `ops`, the version bump and an audit entry as one transaction. The caller holds
    /// the write lock, so the version read here is the one the transaction bumps.
    fn commit(
        &self,
        actor: &str,
        action: &str,
        kind: &str,
        name: &str,
        ops: impl FnOnce(u64, u64) -> Result<Vec<Op>, StoreError>,
    ) -> Result<u64, StoreError> {
        let version = self.version()? + 1;
        let at = now();
        let mut ops = ops(version, at)?;
        let entry = AuditEntry {
            version,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        ops.push(Op {
            tree: T::Audit,
            key: be(version).to_vec(),
            value: Some(serde_json::to_vec(&entry).expect("audit entries serialise")),
        });
        ops.push(Op {
            tree: T::Meta,
            key: META_VERSION.to_vec(),
            value: Some(be(version).to_vec()),
        });
        let result = self.trees[..].transaction(|trees| {
            let current = read_u64(trees[T::Meta as usize].get(META_VERSION)?);
            if current + 1 != version {
                // Unreachable while writers hold the lock; refuse rather than reuse a version.
                return Err(ConflictableTransactionError::Abort(current));
            }
            for op in &ops {
                let tree = &trees[op.tree as usize];
                match &op.value {
                    Some(v) => tree.insert(op.key.as_slice(), v.as_slice())?,
                    None => tree.remove(op.key.as_slice())?,
                };
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                tracing::info!(actor, action, kind, name, version, "registry write");
                Ok(version)
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(current)) => Err(StoreError::Corrupt {
                tree: "meta",
                key: "version".into(),
                reason: format!("changed under the write lock (now {current})"),
            }),
        }
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.consistency.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.consistency.read().unwrap_or_else(|p| p.into_inner())
    }

    // ---- audit, snapshot ----

    /// Audit entries with a version above `after`, oldest first, at most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.tree(T::Audit)
            .range(be(after.saturating_add(1))..)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Self::decode(T::Audit, &k, &v)
            })
            .collect()
    }

    /// Whether this registry ever held an installation named `name` (its audit log records a
    /// write of it). The orchestrator removes an orphan only then: a control started on an
    /// empty or another store must not take a namespace's installations for its own leftovers.
    /// A scan of the log, newest first; orphans are found only when a backend lists.
    pub fn ever_installed(&self, name: &str) -> Result<bool, StoreError> {
        for kv in self.tree(T::Audit).iter().rev() {
            let (k, v) = kv?;
            let entry: AuditEntry = Self::decode(T::Audit, &k, &v)?;
            if entry.kind == "installation" && entry.name == name {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Number of audit entries (equal to [`Store::version`] in a consistent store).
    pub fn audit_len(&self) -> usize {
        self.tree(T::Audit).len()
    }

    /// A consistent view for proxies: installations as servers (secrets opened) and every
    /// gateway. A self-hosted (`stdio`) installation is a server once the orchestrator has it
    /// running, at the URL the runtime gave it.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let _r = self.read_lock();
        let version = self.version()?;
        let templates: BTreeMap<String, Template> = self
            .templates()?
            .into_iter()
            .map(|t| (t.item.name.clone(), t.item))
            .collect();
        let mut servers = Vec::new();
        for inst in self.installations()? {
            let Some(template) = templates.get(&inst.item.template) else {
                continue;
            };
            let values = self.installation_values(&inst.item)?;
            let run: Option<Versioned<crate::model::RunState>> =
                self.get(T::Status, &inst.item.name)?;
            let url = run
                .as_ref()
                .filter(|r| r.item.state == "running")
                .and_then(|r| r.item.url.as_deref());
            if let Some(mut server) = render::server(template, &inst.item.name, &values, url)? {
                if crate::callers::is_per_caller(template) {
                    server.callers = self.caller_secrets(&inst.item.name)?;
                }
                server.resource_tools = inst.item.resource_tools.map(|m| m.as_str().to_owned());
                servers.push(server);
            }
        }
        // A gateway shows the installations that are served: a self-hosted one not running
        // yet is left out of it, and a gateway with nothing served yet is left out whole
        // (proxies refuse a gateway that serves nothing or names an unknown server); one with
        // built-in tools always serves those.
        let present: std::collections::HashSet<String> =
            servers.iter().map(|s| s.name.clone()).collect();
        let gateways = self
            .gateways()?
            .into_iter()
            .filter_map(|g| {
                let mut g = render::gateway(g.item);
                g.servers.retain(|s| present.contains(s));
                g.tools
                    .retain(|t| sluice_config::tool_server(t).is_some_and(|s| present.contains(s)));
                (g.builtin_tools || !g.servers.is_empty() || !g.tools.is_empty()).then_some(g)
            })
            .collect();
        Ok(Snapshot {
            version,
            servers,
            gateways,
        })
    }

    /// Re-seals, in one audited write, every secret sealed by an old key.
    fn reseal_stale_secrets(&self) -> Result<(), StoreError> {
        let _w = self.write_lock();
        let mut ops = Vec::new();
        for kv in self.tree(T::Secrets).iter() {
            let (k, v) = kv?;
            let sealed: Sealed = Self::decode(T::Secrets, &k, &v)?;
            if self.keys.is_stale(&sealed) {
                let place = String::from_utf8_lossy(&k).into_owned();
                let plain = self.keys.open(&place, &sealed)?;
                ops.push(Op::put(T::Secrets, &place, &self.keys.seal(&place, &plain)));
            }
        }
        ops.extend(self.reseal_stale_callers()?);
        if ops.is_empty() {
            return Ok(());
        }
        let count = ops.len();
        self.commit(
            "control",
            "rotate_keys",
            "registry",
            &format!("{count} secrets"),
            |_, _| Ok(ops),
        )?;
        self.flush()?;
        tracing::info!(
            count,
            key = self.keys.current_id(),
            "re-sealed secrets under the current key"
        );
        Ok(())
    }
}
