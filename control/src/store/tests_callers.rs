//! Per-caller secrets in the store: sealed on disk, opened only into the snapshot of a
//! per-caller installation, one audited write each, gone with their installation, re-sealed
//! on key rotation.

use serde_json::json;

use super::tests::TempDir;
use super::*;
use crate::callers::{CallerId, CallerSecretInput};
use crate::model::{InstallationInput, Template};

const ALICE_KEY: &str = "alice-upstream-key-7c1f";
const BOB_KEY: &str = "bob-upstream-key-93ad";
const ISSUER: &str = "https://idp.example/realms/a";

fn keys() -> KeyRing {
    KeyRing::new([9; 32], &[])
}

fn personal() -> Template {
    serde_json::from_value(json!({
        "name": "personal",
        "transport": "http",
        "url": "http://127.0.0.1:1/mcp",
        "credential": {"type": "per_caller", "header": "X-Api-Key", "value": "key={secret}"}
    }))
    .unwrap()
}

fn install(store: &Store, name: &str, template: &str) {
    let input: InstallationInput =
        serde_json::from_value(json!({"name": name, "template": template})).unwrap();
    store.put_installation("ops", input, Mode::Create).unwrap();
}

fn secret(issuer: &str, subject: &str, secret: &str) -> CallerSecretInput {
    CallerSecretInput {
        issuer: issuer.into(),
        subject: subject.into(),
        secret: secret.into(),
    }
}

fn id(issuer: &str, subject: &str) -> CallerId {
    CallerId {
        issuer: issuer.into(),
        subject: subject.into(),
    }
}

#[test]
fn caller_secrets_are_sealed_audited_listed_and_reach_only_their_installations_snapshot() {
    let dir = TempDir::new("callers");
    {
        let store = Store::open(&dir.0, keys()).unwrap();
        store.put_template("ops", personal(), Mode::Create).unwrap();
        install(&store, "mine", "personal");
        install(&store, "yours", "personal");
        let v = store
            .put_caller("ops", "mine", secret("", "alice", ALICE_KEY))
            .unwrap();
        assert_eq!(v, 4);
        store
            .put_caller("ops", "mine", secret(ISSUER, "bob", BOB_KEY))
            .unwrap();
        // Replacing is one more write, audited as such.
        let v = store
            .put_caller("ops", "mine", secret("", "alice", ALICE_KEY))
            .unwrap();
        assert_eq!(v, 6);
        let audit = store.audit(3, 100).unwrap();
        let seen: Vec<(&str, &str, &str)> = audit
            .iter()
            .map(|e| (e.action.as_str(), e.kind.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("create", "caller_secret", "mine/alice"),
                (
                    "create",
                    "caller_secret",
                    "mine/https://idp.example/realms/a#bob"
                ),
                ("replace", "caller_secret", "mine/alice"),
            ]
        );
        let listed: Vec<CallerId> = store
            .callers("mine")
            .unwrap()
            .into_iter()
            .map(|c| c.item)
            .collect();
        assert_eq!(listed, [id("", "alice"), id(ISSUER, "bob")]);
        assert!(store.callers("yours").unwrap().is_empty());

        let snap = store.snapshot().unwrap();
        let mine = snap.servers.iter().find(|s| s.name == "mine").unwrap();
        let got: Vec<(&str, &str, &str)> = mine
            .callers
            .iter()
            .map(|c| (c.issuer.as_str(), c.subject.as_str(), c.secret.as_str()))
            .collect();
        assert_eq!(got, [("", "alice", ALICE_KEY), (ISSUER, "bob", BOB_KEY)]);
        let yours = snap.servers.iter().find(|s| s.name == "yours").unwrap();
        assert!(yours.callers.is_empty());
        // The snapshot is what proxies load: the loader accepts it.
        sluice_config::load_str_with_snapshot("", "", &|_| None, &snap).unwrap();

        let everything = serde_json::to_string(&(store.audit(0, 100).unwrap(), listed)).unwrap();
        assert!(!everything.contains(ALICE_KEY) && !everything.contains(BOB_KEY));

        store
            .delete_caller("ops", "mine", &id(ISSUER, "bob"))
            .unwrap();
        assert!(matches!(
            store.delete_caller("ops", "mine", &id(ISSUER, "bob")),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.callers("mine").unwrap().len(), 1);
        assert_eq!(store.version().unwrap() as usize, store.audit_len());
        store.flush().unwrap();
    }
    assert!(
        !super::tests::files_contain(&dir.0, ALICE_KEY.as_bytes()),
        "a caller's secret is in clear on disk"
    );
    // Deleting the installation deletes its callers' secrets in the same write.
    let store = Store::open(&dir.0, keys()).unwrap();
    let before = store.version().unwrap();
    store.delete_installation("ops", "mine").unwrap();
    assert_eq!(store.version().unwrap(), before + 1);
    assert_eq!(store.tree(T::CallerCredentials).len(), 0);
    install(&store, "mine", "personal");
    assert!(store.callers("mine").unwrap().is_empty(), "none came back");
}

#[test]
fn caller_secrets_are_refused_where_no_per_caller_credential_uses_them() {
    let dir = TempDir::new("callers-refused");
    let store = Store::open(&dir.0, keys()).unwrap();
    let plain: Template = serde_json::from_value(json!({
        "name": "plain", "transport": "http", "url": "http://127.0.0.1:1/mcp"
    }))
    .unwrap();
    store.put_template("ops", plain, Mode::Create).unwrap();
    store.put_template("ops", personal(), Mode::Create).unwrap();
    install(&store, "shared", "plain");
    install(&store, "mine", "personal");
    let version = store.version().unwrap();
    let field = |r: Result<u64, StoreError>| match r {
        Err(StoreError::Invalid(i)) => i.field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(store.put_caller("ops", "shared", secret("", "alice", ALICE_KEY))),
        "callers"
    );
    assert_eq!(
        field(store.put_caller("ops", "mine", secret("", "", ALICE_KEY))),
        "callers.subject"
    );
    assert_eq!(
        field(store.put_caller("ops", "mine", secret("", "alice", "a\nb"))),
        "callers.secret"
    );
    assert!(matches!(
        store.put_caller("ops", "nope", secret("", "alice", ALICE_KEY)),
        Err(StoreError::NotFound {
            kind: "installation",
            ..
        })
    ));
    assert_eq!(
        store.version().unwrap(),
        version,
        "nothing refused was written"
    );

    // With secrets set, the installation cannot lose its per-caller credential.
    store
        .put_caller("ops", "mine", secret("", "alice", ALICE_KEY))
        .unwrap();
    let mut now_static = personal();
    now_static.credential = [("type".into(), "jwt_forward".into())].into();
    assert!(matches!(
        store.put_template("ops", now_static, Mode::Replace),
        Err(StoreError::InUse {
            kind: "template",
            ..
        })
    ));
    let moved: InstallationInput =
        serde_json::from_value(json!({"name": "mine", "template": "plain"})).unwrap();
    assert_eq!(
        field(store.put_installation("ops", moved, Mode::Replace)),
        "installations.template"
    );
}

#[test]
fn caller_secrets_are_resealed_under_a_new_key() {
    let dir = TempDir::new("callers-rotate");
    {
        let store = Store::open(&dir.0, KeyRing::new([1; 32], &[])).unwrap();
        store.put_template("ops", personal(), Mode::Create).unwrap();
        install(&store, "mine", "personal");
        store
            .put_caller("ops", "mine", secret("", "alice", ALICE_KEY))
            .unwrap();
    }
    {
        let store = Store::open(&dir.0, KeyRing::new([2; 32], &[[1; 32]])).unwrap();
        let last = store.audit(0, 100).unwrap().pop().unwrap();
        assert_eq!(
            (last.action.as_str(), last.name.as_str()),
            ("rotate_keys", "1 secrets")
        );
    }
    let store = Store::open(&dir.0, KeyRing::new([2; 32], &[])).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.servers[0].callers[0].secret, ALICE_KEY);
    assert_eq!(
        store.callers("mine").unwrap()[0].version,
        3,
        "its own version kept"
    );
}
