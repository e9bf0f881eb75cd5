//! Schema versions of the registry layout and the steps between them. Each step is one
//! audited write (actor `control`, action `migrate`), so a crash mid-migration leaves the old
//! layout whole and the next start runs the step again.
//!
//! | schema | layout |
//! |---|---|
//! | 1 | the prototype: objects stored bare (no version or time), installations with every value inline, secrets in clear; `schema_version` 1 or absent |
//! | 2 | objects wrapped in `Versioned`; secret values sealed in `secrets`, installations name them only |
//!
//! A fresh database is stamped with the current schema and no write. After a migration the
//! schema 1 records that held secrets in clear are overwritten, but sled is log-structured:
//! their bytes may stay in the data files until sled reclaims the segment. Rotate those
//! upstream secrets after migrating a registry whose files may have been copied.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{
    META_SCHEMA, Op, SCHEMA_VERSION, Store, StoreError, T, Versioned, be, read_u64, secret_place,
};
use crate::model::{Gateway, Installation, Template};
use crate::render;

/// An installation as schema 1 stored it.
#[derive(Deserialize)]
struct InstallationV1 {
    name: String,
    template: String,
    #[serde(default)]
    values: BTreeMap<String, Value>,
}

/// Brings the database to [`SCHEMA_VERSION`].
pub(super) fn run(store: &Store) -> Result<(), StoreError> {
    let meta = store.tree(T::Meta);
    let found = meta.get(META_SCHEMA)?.map(|v| read_u64(Some(v)));
    let empty = [
        T::Templates,
        T::Installations,
        T::Gateways,
        T::Secrets,
        T::Audit,
    ]
    .iter()
    .all(|t| store.tree(*t).is_empty());
    let schema = match found {
        Some(s) => s,
        None if empty => {
            meta.insert(META_SCHEMA, &be(SCHEMA_VERSION))?;
            store.db.flush()?;
            return Ok(());
        }
        None => 1,
    };
    if schema > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    if schema == 1 {
        v1_to_v2(store)?;
    }
    Ok(())
}

fn v1_to_v2(store: &Store) -> Result<(), StoreError> {
    let _w = store.write_lock();
    let templates: Vec<Template> = store.all(T::Templates)?;
    let installations: Vec<InstallationV1> = store.all(T::Installations)?;
    let gateways: Vec<Gateway> = store.all(T::Gateways)?;
    let by_name: BTreeMap<&str, &Template> =
        templates.iter().map(|t| (t.name.as_str(), t)).collect();
    let count = templates.len() + installations.len() + gateways.len();
    store.commit(
        "control",
        "migrate",
        "registry",
        &format!("schema 1 -> 2 ({count} objects)"),
        |version, at| {
            fn wrap<I>(version: u64, updated_at: u64, item: I) -> Versioned<I> {
                Versioned {
                    version,
                    updated_at,
                    item,
                }
            }
            let mut ops = Vec::new();
            for t in &templates {
                ops.push(Op::put(
                    T::Templates,
                    &t.name,
                    &wrap(version, at, t.clone()),
                ));
            }
            for g in &gateways {
                ops.push(Op::put(T::Gateways, &g.name, &wrap(version, at, g.clone())));
            }
            for i in installations {
                let secret = |field: &str| {
                    by_name
                        .get(i.template.as_str())
                        .and_then(|t| t.field(field))
                        .is_some_and(|f| f.secret)
                };
                let mut plain = BTreeMap::new();
                let mut secrets = Vec::new();
                for (field, value) in &i.values {
                    if secret(field) {
                        let place = secret_place(&i.name, field);
                        let sealed = store.keys.seal(&place, &render::text(value));
                        ops.push(Op::put(T::Secrets, &place, &sealed));
                        secrets.push(field.clone());
                    } else {
                        plain.insert(field.clone(), value.clone());
                    }
                }
                let record = Installation {
                    name: i.name.clone(),
                    template: i.template,
                    values: plain,
                    secrets,
                    runtime: None,
                    resource_tools: None,
                };
                ops.push(Op::put(
                    T::Installations,
                    &i.name,
                    &wrap(version, at, record),
                ));
            }
            ops.push(Op {
                tree: T::Meta,
                key: META_SCHEMA.to_vec(),
                value: Some(be(SCHEMA_VERSION).to_vec()),
            });
            Ok(ops)
        },
    )?;
    store.flush()?;
    tracing::info!(count, "migrated the registry from schema 1 to 2");
    Ok(())
}
