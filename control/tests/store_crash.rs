//! Crash safety of the registry: a child process (this test binary re-run on one test) writes
//! in a loop and is killed with SIGKILL at an arbitrary instant; the registry reopened
//! afterwards must hold every acknowledged write, no half of any write, and exactly one
//! audit entry per version.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use sluice_control::KeyRing;
use sluice_control::model::{InstallationInput, Template};
use sluice_control::store::{Mode, Store};

const CHILD_DIR: &str = "SLUICE_CRASH_CHILD_DIR";

fn keys() -> KeyRing {
    KeyRing::new([4; 32], &[])
}

fn template() -> Template {
    serde_json::from_value(json!({
        "name": "t", "transport": "http", "url": "http://127.0.0.1:1/mcp",
        "fields": [{"name": "stamp"}, {"name": "api_key", "secret": true}],
        "credential": {"type": "static", "value": "Bearer {api_key}"}
    }))
    .unwrap()
}

fn input(name: &str, stamp: &str) -> InstallationInput {
    serde_json::from_value(json!({
        "name": name, "template": "t",
        "values": {"stamp": stamp, "api_key": format!("secret-{stamp}")}
    }))
    .unwrap()
}

/// The child's loop; a no-op unless started by the parent test.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let store = Store::open(dir.as_ref(), keys()).unwrap();
    if store.template("t").unwrap().is_none() {
        store
            .put_template("child", template(), Mode::Create)
            .unwrap();
    }
    let tag = std::process::id();
    let mut stdout = std::io::stdout();
    for k in 0u64.. {
        // Creates, replaces of the previous one (installation and secret change together)
        // and deletes; three writes per flush, so some committed writes are never flushed.
        let version = match k % 4 {
            3 => store.delete_installation("child", &format!("i-{tag}-{}", k - 3)),
            1 => {
                let name = format!("i-{tag}-{}", k - 1);
                store.put_installation("child", input(&name, &format!("{tag}-{k}")), Mode::Replace)
            }
            _ => store.put_installation(
                "child",
                input(&format!("i-{tag}-{k}"), &format!("{tag}-{k}")),
                Mode::Create,
            ),
        }
        .unwrap();
        if k % 3 == 2 {
            store.flush_through(version).unwrap();
            use std::io::Write;
            writeln!(stdout, "acked {version}").unwrap();
            stdout.flush().unwrap();
        }
    }
}

fn check_consistent(dir: &std::path::Path, acked: u64) -> u64 {
    let store = Store::open(dir, keys()).unwrap();
    let version = store.version().unwrap();
    assert!(
        version >= acked,
        "acknowledged version {acked} lost (have {version})"
    );
    let audit = store.audit(0, usize::MAX).unwrap();
    assert_eq!(store.audit_len() as u64, version);
    let versions: Vec<u64> = audit.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=version).collect::<Vec<_>>(),
        "audit has gaps"
    );
    // Replaying the audit gives the set of installations the store holds.
    let mut expected = BTreeMap::new();
    for e in audit.iter().filter(|e| e.kind == "installation") {
        match e.action.as_str() {
            "create" | "replace" => expected.insert(e.name.clone(), ()),
            "delete" => expected.remove(&e.name),
            other => panic!("unexpected action {other}"),
        };
    }
    let installations = store.installations().unwrap();
    let names: Vec<&String> = installations.iter().map(|i| &i.item.name).collect();
    assert_eq!(names, expected.keys().collect::<Vec<_>>());
    // Each installation and its sealed secret were written together.
    let snapshot = store.snapshot().unwrap();
    for (inst, server) in installations.iter().zip(&snapshot.servers) {
        let stamp = inst.item.values["stamp"].as_str().unwrap();
        assert_eq!(
            server.credential["value"],
            format!("Bearer secret-{stamp}"),
            "{}",
            inst.item.name
        );
    }
    version
}

#[test]
fn a_writer_killed_with_sigkill_leaves_a_consistent_registry() {
    let dir = std::env::temp_dir().join(format!("sluice-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut total = 0;
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = 0;
        let wanted = 5 + round * 7;
        let mut seen = 0;
        while seen < wanted {
            let line = lines.next().expect("the child stopped early").unwrap();
            if let Some(v) = line.strip_prefix("acked ") {
                acked = v.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let version = check_consistent(&dir, acked);
        assert!(version >= total);
        total = version;
        println!(
            "round {round}: killed after ack {acked}; reopened at version {version}, consistent"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
