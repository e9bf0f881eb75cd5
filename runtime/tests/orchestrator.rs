//! Control's orchestrator over two backends at once: the local one (real child processes, the
//! official Python SDK's stdio server behind the in-process bridge) and the Kubernetes one
//! talking to a FAKE API server (`fake_kube`, not a cluster). Each installation runs on the
//! backend it names or the default; changing its `runtime` removes it from the old backend
//! and ensures it on the new one. Waits follow the registry's published versions (every run
//! state the orchestrator writes publishes one), bounded.

mod fake_kube;
mod python_peer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fake_kube::{FakeApi, NS};
use serde_json::json;
use sluice_control::KeyRing;
use sluice_control::api::Api;
use sluice_control::backends::Backends;
use sluice_control::model::{InstallationInput, RunState, RuntimeKind, Template};
use sluice_control::orchestrator::Orchestrator;
use sluice_control::store::{Mode, Store};
use sluice_runtime::{InstallationStatus, KubernetesConfig, LocalRuntime, Runtime};

use python_peer::{python, repo};

const BOUND: Duration = Duration::from_secs(60);

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a registry write as the admin API would: flushed, then published.
fn write(store: &Store, api: &Api, f: impl FnOnce(&Store) -> u64) {
    let version = f(store);
    store.flush_through(version).expect("flush");
    api.publish(version);
}

fn install(name: &str, runtime: Option<RuntimeKind>) -> InstallationInput {
    InstallationInput {
        name: name.into(),
        template: "py".into(),
        values: Default::default(),
        runtime: runtime.map(|r| r.as_str().to_owned()),
        resource_tools: None,
    }
}

fn deployment(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}")
}

fn objects_of(fake: &FakeApi, name: &str) -> Vec<String> {
    let suffix = format!("/{name}");
    fake.state()
        .objects
        .keys()
        .filter(|p| p.ends_with(&suffix))
        .cloned()
        .collect()
}

/// Waits until `done` holds of the two installations' run states, re-checking after every
/// published write.
async fn until(
    store: &Store,
    versions: &mut tokio::sync::watch::Receiver<u64>,
    what: &str,
    done: impl Fn(Option<RunState>, Option<RunState>) -> bool,
) {
    let state = |n: &str| store.run_state(n).unwrap().map(|v| v.item);
    let wait = async {
        while !done(state("here"), state("there")) {
            versions.changed().await.expect("control is up");
        }
    };
    if tokio::time::timeout(BOUND, wait).await.is_err() {
        panic!(
            "{what}: here {:?}, there {:?}",
            state("here"),
            state("there")
        );
    }
}

fn on(state: &Option<RunState>, kind: RuntimeKind, url_prefix: &str, running: bool) -> bool {
    state.as_ref().is_some_and(|s| {
        s.runtime == Some(kind)
            && s.url.as_deref().is_some_and(|u| u.starts_with(url_prefix))
            && (!running || s.state == "running")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_run_on_the_backend_they_name_and_move_when_it_changes() {
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-orch-{}", std::process::id())));
    let store = Arc::new(Store::open(&dir.0, KeyRing::new([7; 32], &[])).expect("store"));
    let api = Arc::new(Api::new(store.clone(), &[], &[]).expect("api"));
    let mut k8s_config = KubernetesConfig::new(NS, "registry.example/sluice:1.0");
    k8s_config.poll = Duration::from_millis(5);
    let (fake, kubernetes) = FakeApi::start(k8s_config);
    let local = Arc::new(LocalRuntime::default());
    let backends = Arc::new(
        Backends::new(RuntimeKind::Local)
            .with_local(local.clone())
            .with(RuntimeKind::Kubernetes, Arc::new(kubernetes)),
    );
    let mut versions = api.subscribe();
    // An hour's resync: every pass below is woken by a write.
    let orchestrator = Orchestrator::new(
        store.clone(),
        api.clone(),
        backends.clone(),
        Duration::from_secs(3600),
    );
    let task = tokio::spawn(orchestrator.run());

    let server = repo().join("tests/peers/python/stdio_server.py");
    let template: Template = serde_json::from_value(json!({
        "name": "py", "transport": "stdio",
        "command": [python(), server.to_string_lossy(), "--name", "py"],
    }))
    .unwrap();
    write(&store, &api, |s| {
        s.put_template("ops", template, Mode::Create).unwrap()
    });
    // `here` takes the default (local); `there` names kubernetes.
    write(&store, &api, |s| {
        s.put_installation("ops", install("here", None), Mode::Create)
            .unwrap()
    });
    write(&store, &api, |s| {
        let there = install("there", Some(RuntimeKind::Kubernetes));
        s.put_installation("ops", there, Mode::Create).unwrap()
    });

    let in_cluster = format!("http://there.{NS}.svc:8080/mcp");
    until(
        &store,
        &mut versions,
        "each on its backend",
        |here, there| {
            on(&here, RuntimeKind::Local, "http://127.0.0.1:", true)
                && on(&there, RuntimeKind::Kubernetes, &in_cluster, false)
        },
    )
    .await;
    let Ok(InstallationStatus::Running { pid: local_pid, .. }) = local.status("here").await else {
        panic!(
            "here is not running locally: {:?}",
            local.status("here").await
        );
    };
    assert!(
        local.status("there").await.is_err(),
        "there runs locally too"
    );
    assert_eq!(
        objects_of(&fake, "there").len(),
        3,
        "{:?}",
        fake.state().objects.keys()
    );
    assert!(
        objects_of(&fake, "here").is_empty(),
        "here is in the cluster too"
    );
    // Met for the first time, `here` was looked for (and not found) in the cluster, so a
    // switch made while control was down would have been cleaned up; nothing was written.
    let seen = fake.take();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path == deployment("here")),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.method != "GET" && s.path.ends_with("/here")),
        "{seen:?}"
    );

    // Swap them: each leaves its old backend and runs on the new one.
    write(&store, &api, |s| {
        let here = install("here", Some(RuntimeKind::Kubernetes));
        s.put_installation("ops", here, Mode::Replace).unwrap()
    });
    write(&store, &api, |s| {
        let there = install("there", Some(RuntimeKind::Local));
        s.put_installation("ops", there, Mode::Replace).unwrap()
    });
    let in_cluster = format!("http://here.{NS}.svc:8080/mcp");
    until(&store, &mut versions, "swapped", |here, there| {
        on(&here, RuntimeKind::Kubernetes, &in_cluster, false)
            && on(&there, RuntimeKind::Local, "http://127.0.0.1:", true)
    })
    .await;
    assert!(
        matches!(
            local.status("there").await,
            Ok(InstallationStatus::Running { .. })
        ),
        "{:?}",
        local.status("there").await
    );
    assert!(
        local.status("here").await.is_err(),
        "here still runs locally"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{local_pid}")).exists(),
        "the old local process {local_pid} survived the move"
    );
    assert_eq!(objects_of(&fake, "here").len(), 3);
    assert!(
        objects_of(&fake, "there").is_empty(),
        "left in the cluster: {:?}",
        objects_of(&fake, "there")
    );
    let deletes: Vec<String> = fake
        .take()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path)
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    assert!(deletes.iter().all(|p| p.ends_with("/there")), "{deletes:?}");

    task.abort();
    let _ = task.await;
    backends.shutdown().await;
}

fn seen_deletes(state: &fake_kube::State, name: &str) -> usize {
    let suffix = format!("/{name}");
    state
        .seen
        .iter()
        .filter(|s| s.method == "DELETE" && s.path.ends_with(&suffix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_wakes_the_orchestrator_and_its_list_removes_orphans() {
    let dir = TempDir(std::env::temp_dir().join(format!("sluice-orch-w-{}", std::process::id())));
    let store = Arc::new(Store::open(&dir.0, KeyRing::new([7; 32], &[])).expect("store"));
    let api = Arc::new(Api::new(store.clone(), &[], &[]).expect("api"));
    let mut k8s_config = KubernetesConfig::new(NS, "registry.example/sluice:1.0");
    k8s_config.poll = Duration::from_millis(5);
    let (fake, kubernetes) = FakeApi::start(k8s_config);
    // Left by an installation deleted while control was down: Sluice's three objects. Next to
    // them, a Deployment of someone else's and one with Sluice's labels for another name.
    for path in [
        format!("/api/v1/namespaces/{NS}/secrets/gone"),
        format!("/api/v1/namespaces/{NS}/services/gone"),
        deployment("gone"),
    ] {
        fake.put(&path, fake_kube::found(&path, Some("gone")));
    }
    fake.put(
        &deployment("theirs"),
        fake_kube::found(&deployment("theirs"), None),
    );
    let borrowed = deployment("borrowed");
    fake.put(&borrowed, fake_kube::found(&borrowed, Some("gone")));
    // Sluice's labels for an installation this registry never had (another control's, say).
    let stranger = deployment("stranger");
    fake.put(&stranger, fake_kube::found(&stranger, Some("stranger")));
    let backends = Arc::new(
        Backends::new(RuntimeKind::Kubernetes).with(RuntimeKind::Kubernetes, Arc::new(kubernetes)),
    );
    let template: Template = serde_json::from_value(json!({
        "name": "py", "transport": "stdio", "command": ["mcp-py"],
    }))
    .unwrap();
    write(&store, &api, |s| {
        s.put_template("ops", template, Mode::Create).unwrap()
    });
    write(&store, &api, |s| {
        s.put_installation("ops", install("kept", None), Mode::Create)
            .unwrap()
    });
    // `gone` was this registry's, deleted while control was down.
    write(&store, &api, |s| {
        s.put_installation("ops", install("gone", None), Mode::Create)
            .unwrap()
    });
    write(&store, &api, |s| {
        s.delete_installation("ops", "gone").unwrap()
    });
    // An hour's resync, and no registry write after this: only the watch wakes it below.
    let orchestrator = Orchestrator::new(
        store.clone(),
        api.clone(),
        backends,
        Duration::from_secs(3600),
    );
    let mut idle = orchestrator.idle();
    let task = tokio::spawn(orchestrator.run());

    fake.until("the orphan removed, `kept` made, the watch open", |s| {
        seen_deletes(s, "gone") == 3
            && s.objects.contains_key(&deployment("kept"))
            && !s.watches.is_empty()
    })
    .await;
    let left: Vec<String> = fake.state().objects.keys().cloned().collect();
    assert!(!left.iter().any(|p| p.ends_with("/gone")), "{left:?}");
    assert!(left.contains(&deployment("theirs")), "{left:?}");
    assert!(left.contains(&borrowed), "{left:?}");
    assert_eq!(seen_deletes(&fake.state(), "theirs"), 0);
    assert_eq!(seen_deletes(&fake.state(), "borrowed"), 0);

    let mut versions = api.subscribe();
    until(&store, &mut versions, "kept's state written", |_, _| {
        store.run_state("kept").unwrap().is_some()
    })
    .await;

    // Once nothing is pending (its own writes and applies reconciled), deleted behind Sluice's
    // back: only the watch's event can wake it, and it applies the Deployment again.
    tokio::time::timeout(BOUND, idle.wait_for(|i| *i))
        .await
        .expect("the orchestrator goes idle")
        .expect("the orchestrator runs");
    let uid = fake.object(&deployment("kept")).unwrap()["metadata"]["uid"].clone();
    fake.delete_behind(&deployment("kept"));
    fake.until("kept applied again", |s| {
        s.objects.contains_key(&deployment("kept"))
    })
    .await;
    let again = fake.object(&deployment("kept")).unwrap();
    assert_ne!(again["metadata"]["uid"], uid, "{again}");
    assert!(
        fake.state()
            .seen
            .iter()
            .any(|s| s.method == "PATCH" && s.path == deployment("kept")),
    );

    // By now every pass since the first listing has run: the stranger was never touched.
    assert!(fake.object(&stranger).is_some());
    assert_eq!(seen_deletes(&fake.state(), "stranger"), 0);

    task.abort();
    let _ = task.await;
}
