//! The `caller_credentials` tree: each caller's secret for a per-caller installation, sealed
//! like the `secrets` tree with the record's key as associated data (a ciphertext copied to
//! another installation or caller does not open). Keys are `{installation}/{issuer}\0{subject}`:
//! installation names cannot hold `/` and callers cannot hold control characters, so one
//! installation's callers are one prefix scan and no two callers share a key.

use serde::{Deserialize, Serialize};
use sluice_config::SnapshotCaller;

use super::{Op, Store, StoreError, T, Versioned};
use crate::callers::{self, CallerId, CallerSecretInput};
use crate::model::{Installation, Invalid};
use crate::render;
use crate::secrets::Sealed;

/// What the tree stores per caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredCaller {
    issuer: String,
    subject: String,
    secret: Sealed,
}

fn prefix(installation: &str) -> String {
    format!("{installation}/")
}

fn place(installation: &str, id: &CallerId) -> String {
    format!("{}{}\0{}", prefix(installation), id.issuer, id.subject)
}

/// How a caller's secret is named in the audit log and in errors (no secret).
fn shown(installation: &str, id: &CallerId) -> String {
    if id.issuer.is_empty() {
        format!("{installation}/{}", id.subject)
    } else {
        format!("{installation}/{}#{}", id.issuer, id.subject)
    }
}

impl Store {
    /// Sets (creates or replaces) one caller's secret of a per-caller installation.
    pub fn put_caller(
        &self,
        actor: &str,
        installation: &str,
        input: CallerSecretInput,
    ) -> Result<u64, StoreError> {
        input.validate()?;
        let _w = self.write_lock();
        let inst = self.caller_installation(installation)?;
        let template = self
            .template(&inst.template)?
            .ok_or_else(|| StoreError::NotFound {
                kind: "template",
                name: inst.template.clone(),
            })?
            .item;
        if !callers::is_per_caller(&template) {
            return Err(Invalid::new(
                "callers",
                format!(
                    "installation {installation:?} takes no per-caller secrets: its template {:?} has no per_caller credential",
                    template.name
                ),
            )
            .into());
        }
        let values = self.installation_values(&inst)?;
        if let Some(server) = render::server(&template, installation, &values, None)? {
            callers::check_with_loader(server, &input)?;
        }
        let id = input.id();
        let key = place(installation, &id);
        let action = if self.tree(T::CallerCredentials).contains_key(&key)? {
            "replace"
        } else {
            "create"
        };
        let name = shown(installation, &id);
        self.commit(actor, action, "caller_secret", &name, |version, at| {
            let record = Versioned {
                version,
                updated_at: at,
                item: StoredCaller {
                    issuer: id.issuer.clone(),
                    subject: id.subject.clone(),
                    secret: self.keys.seal(&key, &input.secret),
                },
            };
            Ok(vec![Op::put(T::CallerCredentials, &key, &record)])
        })
    }

    /// Removes one caller's secret.
    pub fn delete_caller(
        &self,
        actor: &str,
        installation: &str,
        id: &CallerId,
    ) -> Result<u64, StoreError> {
        id.validate()?;
        let _w = self.write_lock();
        self.caller_installation(installation)?;
        let key = place(installation, id);
        let name = shown(installation, id);
        if !self.tree(T::CallerCredentials).contains_key(&key)? {
            return Err(StoreError::NotFound {
                kind: "caller secret",
                name,
            });
        }
        self.commit(actor, "delete", "caller_secret", &name, |_, _| {
            Ok(vec![Op::remove(T::CallerCredentials, &key)])
        })
    }

    /// The callers of an installation that have a secret (not the secrets), in key order.
    pub fn callers(&self, installation: &str) -> Result<Vec<Versioned<CallerId>>, StoreError> {
        self.caller_installation(installation)?;
        Ok(self
            .stored_callers(installation)?
            .into_iter()
            .map(|(_, c)| Versioned {
                version: c.version,
                updated_at: c.updated_at,
                item: CallerId {
                    issuer: c.item.issuer,
                    subject: c.item.subject,
                },
            })
            .collect())
    }

    /// Whether any caller of the installation has a secret.
    pub(super) fn has_callers(&self, installation: &str) -> Result<bool, StoreError> {
        Ok(self
            .tree(T::CallerCredentials)
            .scan_prefix(prefix(installation))
            .next()
            .transpose()?
            .is_some())
    }

    /// The installation's callers with their secrets opened, for the snapshot.
    pub(super) fn caller_secrets(
        &self,
        installation: &str,
    ) -> Result<Vec<SnapshotCaller>, StoreError> {
        self.stored_callers(installation)?
            .into_iter()
            .map(|(key, c)| {
                Ok(SnapshotCaller {
                    secret: self.keys.open(&key, &c.item.secret)?,
                    issuer: c.item.issuer,
                    subject: c.item.subject,
                })
            })
            .collect()
    }

    /// The removals of every caller secret of an installation (when it is deleted).
    pub(super) fn caller_removals(&self, installation: &str) -> Result<Vec<Op>, StoreError> {
        Ok(self
            .stored_callers(installation)?
            .into_iter()
            .map(|(key, _)| Op::remove(T::CallerCredentials, &key))
            .collect())
    }

    /// Re-seals under the current key every caller secret an old key sealed.
    pub(super) fn reseal_stale_callers(&self) -> Result<Vec<Op>, StoreError> {
        let mut ops = Vec::new();
        for kv in self.tree(T::CallerCredentials).iter() {
            let (k, v) = kv?;
            let mut record: Versioned<StoredCaller> = Self::decode(T::CallerCredentials, &k, &v)?;
            if self.keys.is_stale(&record.item.secret) {
                let key = String::from_utf8_lossy(&k).into_owned();
                let plain = self.keys.open(&key, &record.item.secret)?;
                record.item.secret = self.keys.seal(&key, &plain);
                ops.push(Op::put(T::CallerCredentials, &key, &record));
            }
        }
        Ok(ops)
    }

    fn stored_callers(
        &self,
        installation: &str,
    ) -> Result<Vec<(String, Versioned<StoredCaller>)>, StoreError> {
        self.tree(T::CallerCredentials)
            .scan_prefix(prefix(installation))
            .map(|kv| {
                let (k, v) = kv?;
                let record = Self::decode(T::CallerCredentials, &k, &v)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), record))
            })
            .collect()
    }

    fn caller_installation(&self, name: &str) -> Result<Installation, StoreError> {
        crate::model::check_name("installations.name", name)?;
        self.get::<Versioned<Installation>>(T::Installations, name)?
            .map(|i| i.item)
            .ok_or_else(|| StoreError::NotFound {
                kind: "installation",
                name: name.to_owned(),
            })
    }
}
