use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::model::{Gateway, InstallationInput, Template};
use crate::secrets::SecretError;

pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("sluice-store-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const SECRET: &str = "ghp-very-secret-value-42";

fn keys() -> KeyRing {
    KeyRing::new([9; 32], &[])
}

fn template() -> Template {
    serde_json::from_value(json!({
        "name": "github",
        "transport": "http",
        "url": "{base}/mcp",
        "fields": [
            {"name": "base", "type": "url", "default": "http://127.0.0.1:1"},
            {"name": "api_key", "secret": true}
        ],
        "credential": {"type": "static", "value": "Bearer {api_key}"}
    }))
    .unwrap()
}

fn installation(name: &str, secret: &str) -> InstallationInput {
    serde_json::from_value(json!({
        "name": name, "template": "github", "values": {"api_key": secret}
    }))
    .unwrap()
}

fn gateway(servers: &[&str]) -> Gateway {
    serde_json::from_value(json!({"name": "team", "servers": servers})).unwrap()
}

pub(super) fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_contain(&p, needle)
        } else {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

#[test]
fn every_write_bumps_the_version_once_and_adds_one_audit_entry() {
    let dir = TempDir::new("versions");
    let store = Store::open(&dir.0, keys()).unwrap();
    assert_eq!(store.version().unwrap(), 0);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.put_template("ops", template(), Mode::Create).unwrap(),
        1
    );
    assert_eq!(
        store
            .put_installation("ops", installation("gh", SECRET), Mode::Create)
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .put_gateway("ops", gateway(&["gh"]), Mode::Create)
            .unwrap(),
        3
    );
    assert_eq!(store.assign("ops", "team", "gh__search").unwrap(), 4);
    assert_eq!(store.unassign("ops", "team", "gh").unwrap(), 5);
    let audit = store.audit(0, 100).unwrap();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.action.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "github"),
            ("create", "gh"),
            ("create", "team"),
            ("assign", "team/gh__search"),
            ("unassign", "team/gh")
        ]
    );
    assert!(audit.iter().all(|e| e.actor == "ops"));
    assert_eq!(store.audit(3, 1).unwrap()[0].version, 4);
    // A refused write changes nothing.
    assert!(matches!(
        store.put_template("ops", template(), Mode::Create),
        Err(StoreError::Exists { .. })
    ));
    assert_eq!(store.version().unwrap(), 5);
    assert_eq!(store.audit_len(), 5);
}

#[test]
fn secrets_are_sealed_on_disk_opened_in_the_snapshot_and_absent_from_the_audit() {
    let dir = TempDir::new("secrets");
    {
        let store = Store::open(&dir.0, keys()).unwrap();
        store.put_template("ops", template(), Mode::Create).unwrap();
        store
            .put_installation("ops", installation("gh", SECRET), Mode::Create)
            .unwrap();
        let inst = store.installation("gh").unwrap().unwrap().item;
        assert_eq!(inst.secrets, ["api_key"]);
        assert!(!inst.values.contains_key("api_key"));
        let snap = store.snapshot().unwrap();
        assert_eq!(
            snap.servers[0].credential["value"],
            format!("Bearer {SECRET}")
        );
        let audit = serde_json::to_string(&store.audit(0, 100).unwrap()).unwrap();
        assert!(!audit.contains(SECRET));
        store.flush().unwrap();
    }
    assert!(
        !files_contain(&dir.0, SECRET.as_bytes()),
        "a secret is in clear on disk"
    );
    // A different key cannot open it.
    let store = Store::open(&dir.0, KeyRing::new([1; 32], &[]));
    assert!(matches!(
        store,
        Err(StoreError::Secret(SecretError::UnknownKey(_)))
    ));
}

#[test]
fn a_replace_without_the_secret_keeps_it_and_the_snapshot_follows() {
    let dir = TempDir::new("keep");
    let store = Store::open(&dir.0, keys()).unwrap();
    store.put_template("ops", template(), Mode::Create).unwrap();
    store
        .put_installation("ops", installation("gh", SECRET), Mode::Create)
        .unwrap();
    let input: InstallationInput = serde_json::from_value(json!({
        "name": "gh", "template": "github", "values": {"base": "http://10.0.0.1:8"}
    }))
    .unwrap();
    store.put_installation("ops", input, Mode::Replace).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.servers[0].url, "http://10.0.0.1:8/mcp");
    assert_eq!(
        snap.servers[0].credential["value"],
        format!("Bearer {SECRET}")
    );
    assert_eq!(snap.version, 3);
}

#[test]
fn references_are_enforced_in_both_directions() {
    let dir = TempDir::new("refs");
    let store = Store::open(&dir.0, keys()).unwrap();
    let e = store
        .put_installation("ops", installation("gh", SECRET), Mode::Create)
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(i) if i.field == "installations.template"),
        "{e}"
    );
    store.put_template("ops", template(), Mode::Create).unwrap();
    store
        .put_installation("ops", installation("gh", SECRET), Mode::Create)
        .unwrap();
    let e = store
        .put_gateway("ops", gateway(&["gh", "nope"]), Mode::Create)
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(i) if i.field == "gateways.servers[1]"),
        "{e}"
    );
    store
        .put_gateway("ops", gateway(&["gh"]), Mode::Create)
        .unwrap();
    assert!(matches!(
        store.delete_installation("ops", "gh"),
        Err(StoreError::InUse { .. })
    ));
    assert!(matches!(
        store.delete_template("ops", "github"),
        Err(StoreError::InUse { .. })
    ));
    // A template change that no longer fits its installation is refused.
    let mut t = template();
    t.fields
        .push(serde_json::from_value(json!({"name": "org"})).unwrap());
    assert!(matches!(
        store.put_template("ops", t, Mode::Replace),
        Err(StoreError::InUse { .. })
    ));
    store.delete_gateway("ops", "team").unwrap();
    store.delete_installation("ops", "gh").unwrap();
    store.delete_template("ops", "github").unwrap();
    assert_eq!(store.version().unwrap(), 6);
    assert!(store.snapshot().unwrap().servers.is_empty());
}

#[test]
fn old_keys_open_and_the_store_reseals_everything_under_the_new_key() {
    let dir = TempDir::new("rotate");
    {
        let store = Store::open(&dir.0, KeyRing::new([1; 32], &[])).unwrap();
        store.put_template("ops", template(), Mode::Create).unwrap();
        store
            .put_installation("ops", installation("gh", SECRET), Mode::Create)
            .unwrap();
    }
    {
        let store = Store::open(&dir.0, KeyRing::new([2; 32], &[[1; 32]])).unwrap();
        let last = store.audit(0, 100).unwrap().pop().unwrap();
        assert_eq!(
            (last.action.as_str(), last.actor.as_str()),
            ("rotate_keys", "control")
        );
        assert_eq!(store.version().unwrap(), 3);
    }
    // The old key is no longer needed.
    let store = Store::open(&dir.0, KeyRing::new([2; 32], &[])).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.servers[0].credential["value"],
        format!("Bearer {SECRET}")
    );
    assert_eq!(store.version().unwrap(), 3, "nothing left to re-seal");
}

/// Writes the prototype's layout (schema 1) with sled directly.
fn write_v1(dir: &Path, schema_key: bool) {
    let db = sled::open(dir).unwrap();
    let t = db.open_tree("templates").unwrap();
    t.insert("github", serde_json::to_vec(&template()).unwrap())
        .unwrap();
    let i = db.open_tree("installations").unwrap();
    let v1 = json!({"name": "gh", "template": "github",
        "values": {"base": "http://127.0.0.1:5", "api_key": SECRET}});
    i.insert("gh", serde_json::to_vec(&v1).unwrap()).unwrap();
    let g = db.open_tree("gateways").unwrap();
    g.insert("team", serde_json::to_vec(&gateway(&["gh"])).unwrap())
        .unwrap();
    if schema_key {
        db.open_tree("meta")
            .unwrap()
            .insert(META_SCHEMA, &be(1))
            .unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn a_schema_1_registry_is_migrated_with_its_secrets_sealed() {
    for schema_key in [true, false] {
        let dir = TempDir::new("migrate");
        write_v1(&dir.0, schema_key);
        let store = Store::open(&dir.0, keys()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.version().unwrap(), 1);
        let entry = &store.audit(0, 10).unwrap()[0];
        assert_eq!(
            (entry.actor.as_str(), entry.action.as_str()),
            ("control", "migrate")
        );
        let inst = store.installation("gh").unwrap().unwrap();
        assert_eq!(inst.version, 1);
        assert_eq!(inst.item.secrets, ["api_key"]);
        assert_eq!(inst.item.values["base"], "http://127.0.0.1:5");
        assert!(!inst.item.values.contains_key("api_key"));
        let snap = store.snapshot().unwrap();
        assert_eq!(
            snap.servers[0].credential["value"],
            format!("Bearer {SECRET}")
        );
        assert_eq!(snap.gateways[0].servers, ["gh"]);
        drop(store);
        // Migrating is done once.
        let store = Store::open(&dir.0, keys()).unwrap();
        assert_eq!(store.version().unwrap(), 1);
    }
}

#[test]
fn a_registry_from_a_newer_build_is_refused() {
    let dir = TempDir::new("newer");
    {
        let db = sled::open(&dir.0).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(META_SCHEMA, &be(SCHEMA_VERSION + 1))
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Store::open(&dir.0, keys()),
        Err(StoreError::SchemaTooNew {
            found: 3,
            supported: 2
        })
    ));
}

#[test]
fn stdio_installations_are_stored_but_left_out_of_the_snapshot() {
    let dir = TempDir::new("stdio");
    let store = Store::open(&dir.0, keys()).unwrap();
    let t: Template = serde_json::from_value(json!({
        "name": "files", "transport": "stdio", "command": ["mcp-files", "{root}"],
        "fields": [{"name": "root"}]
    }))
    .unwrap();
    store.put_template("ops", t, Mode::Create).unwrap();
    let i: InstallationInput = serde_json::from_value(json!({
        "name": "files", "template": "files", "values": {"root": "/srv"}
    }))
    .unwrap();
    store.put_installation("ops", i, Mode::Create).unwrap();
    let snap = store.snapshot().unwrap();
    assert!(snap.servers.is_empty());
    assert_eq!(snap.version, 2);
}

#[test]
fn a_field_made_secret_by_a_template_change_is_sealed_in_the_same_write() {
    let dir = TempDir::new("resecret");
    let store = Store::open(&dir.0, keys()).unwrap();
    store.put_template("ops", template(), Mode::Create).unwrap();
    let input: InstallationInput = serde_json::from_value(json!({
        "name": "gh", "template": "github",
        "values": {"base": "http://10.9.8.7:1", "api_key": SECRET}
    }))
    .unwrap();
    store.put_installation("ops", input, Mode::Create).unwrap();
    let mut t = template();
    t.fields[0].secret = true;
    t.fields[0].default = None;
    assert_eq!(store.put_template("ops", t, Mode::Replace).unwrap(), 3);
    let inst = store.installation("gh").unwrap().unwrap();
    assert_eq!(inst.version, 3);
    assert_eq!(inst.item.secrets, ["api_key", "base"]);
    assert!(inst.item.values.is_empty());
    assert_eq!(
        store.snapshot().unwrap().servers[0].url,
        "http://10.9.8.7:1/mcp"
    );
    // The old clear record may linger in sled's log until its segment is reclaimed, as after
    // a schema 1 migration; only values written as secrets are never on disk in clear.
}
