//! The Kubernetes backend against a FAKE API server.
//!
//! No Kubernetes API server can run here, so these tests are not against a cluster: kube's
//! client talks to an in-memory `tower_test` mock service answered by [`FakeApi`]
//! (`fake_kube/mod.rs`), and the tests assert the exact requests made: method, path, query
//! and the key fields of each body. What a real API server adds (admission, defaulting,
//! field-manager conflicts, scheduling, garbage collection) is not covered.

mod fake_kube;

use std::time::Duration;

use fake_kube::{FakeApi, NS, Seen, query_value, url_pairs};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice_runtime::{
    Change, InstallationSpec, InstallationStatus, KubernetesConfig, Resources, Runtime,
    RuntimeError, Transport,
};

/// Generous: nothing here waits on anything but the in-memory fake.
const BOUND: Duration = Duration::from_secs(20);

fn config() -> KubernetesConfig {
    let mut config = KubernetesConfig::new(NS, "registry.example/sluice:1.0");
    config.poll = Duration::from_millis(5);
    config
}

fn stdio_spec(name: &str) -> InstallationSpec {
    InstallationSpec {
        name: name.into(),
        command: "npx".into(),
        args: vec!["-y".into(), "@modelcontextprotocol/server-github".into()],
        env: vec![("LOG_LEVEL".into(), "debug".into())],
        secret_env: vec![("GITHUB_TOKEN".into(), "ghp_secret".into())],
        transport: Transport::Stdio,
        image: None,
        resources: Some(Resources {
            cpu_request: Some("100m".into()),
            memory_request: Some("128Mi".into()),
            cpu_limit: Some("1".into()),
            memory_limit: Some("512Mi".into()),
        }),
    }
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f).await.expect("bounded wait")
}

fn paths(name: &str) -> [String; 3] {
    [
        format!("/api/v1/namespaces/{NS}/secrets/{name}"),
        format!("/api/v1/namespaces/{NS}/services/{name}"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
    ]
}

fn summary(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

fn labels_ok(object: &Value, name: &str) {
    let labels = &object["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], name, "{object}");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sluice", "{object}");
    assert_eq!(labels["sluice.dev/installation"], name, "{object}");
}

#[tokio::test]
async fn ensure_creates_secret_service_and_deployment_with_the_bridge() {
    let (fake, runtime) = FakeApi::start(config());
    let spec = stdio_spec("github");
    let endpoint = bounded(runtime.ensure(&spec)).await.expect("ensure");
    assert_eq!(endpoint.url, "http://github.mcp.svc:8080/mcp");

    let seen = fake.take();
    let [secret, service, deployment] = paths("github");
    assert_eq!(
        summary(&seen),
        vec![
            // Ownership checked first, then applied in dependency order: the Deployment
            // first without replicas (the others name it their owner, by uid), then the
            // Secret and Service, then the Deployment as it should run.
            format!("GET {secret}"),
            format!("GET {service}"),
            format!("GET {deployment}"),
            format!("PATCH {deployment}"),
            format!("PATCH {secret}"),
            format!("PATCH {service}"),
            format!("PATCH {deployment}"),
            // The apply's answer has no rollout status yet: read until available.
            format!("GET {deployment}"),
        ]
    );
    for apply in seen.iter().filter(|s| s.method == "PATCH") {
        let query: Vec<_> = url_pairs(&apply.query).collect();
        assert!(
            query.contains(&("fieldManager".into(), "sluice".into())),
            "{query:?}"
        );
        assert!(
            query.contains(&("force".into(), "true".into())),
            "{query:?}"
        );
        let body = apply.body.as_ref().expect("an apply body");
        labels_ok(body, "github");
        assert_eq!(body["metadata"]["namespace"], NS);
    }

    // No pod can start before its Secret exists: the first Deployment has no replicas.
    let placeholder = seen[3].body.clone().unwrap();
    assert_eq!(placeholder["spec"]["replicas"], 0);
    assert!(placeholder["metadata"].get("ownerReferences").is_none());
    // The Secret and the Service are owned by the Deployment (its uid), so the cluster's
    // garbage collector removes them with it.
    let uid = fake.object(&deployment).unwrap()["metadata"]["uid"].clone();
    assert!(uid.is_string(), "{uid}");
    let owned = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "github",
        "uid": uid, "controller": false, "blockOwnerDeletion": true}]);
    for at in [4, 5] {
        assert_eq!(
            seen[at].body.as_ref().unwrap()["metadata"]["ownerReferences"],
            owned,
            "{}",
            seen[at].path
        );
    }

    // The Secret: the secret variable, base64-encoded, and nothing else.
    let secret_body = seen[4].body.clone().unwrap();
    assert_eq!(secret_body["kind"], "Secret");
    assert_eq!(
        secret_body["data"],
        json!({"GITHUB_TOKEN": "Z2hwX3NlY3JldA=="})
    );

    let service_body = seen[5].body.clone().unwrap();
    assert_eq!(service_body["kind"], "Service");
    assert_eq!(
        service_body["spec"]["selector"],
        json!({"app.kubernetes.io/managed-by": "sluice", "sluice.dev/installation": "github"})
    );
    assert_eq!(service_body["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service_body["spec"]["ports"][0]["targetPort"], "mcp");

    let d = seen[6].body.clone().unwrap();
    assert_eq!(d["kind"], "Deployment");
    assert!(d["metadata"].get("ownerReferences").is_none(), "{d}");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["spec"]["replicas"], 1);
    let template = &d["spec"]["template"];
    labels_ok(template, "github");
    // What the chart's NetworkPolicy selects.
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/component"],
        "mcp-server"
    );
    // The Secret's resourceVersion, so a changed secret rolls the pods.
    let secret_version = fake.object(&secret).unwrap()["metadata"]["resourceVersion"].clone();
    assert_eq!(
        template["metadata"]["annotations"]["sluice.dev/secret-version"],
        secret_version
    );
    let pod = &template["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}])
    );
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "server");
    assert_eq!(c["image"], "registry.example/sluice:1.0");
    assert_eq!(c["command"], json!(["sluice"]));
    assert_eq!(
        c["args"],
        json!([
            "bridge",
            "--listen",
            "0.0.0.0:8080",
            "--name",
            "github",
            "--",
            "npx",
            "-y",
            "@modelcontextprotocol/server-github"
        ])
    );
    assert_eq!(
        c["securityContext"],
        json!({
            "runAsNonRoot": true, "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"},
               "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], "mcp");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let env = c["env"].as_array().unwrap();
    assert!(
        env.contains(&json!({"name": "LOG_LEVEL", "value": "debug"})),
        "{env:?}"
    );
    assert!(
        env.contains(&json!({"name": "HOME", "value": "/tmp"})),
        "{env:?}"
    );
    assert!(
        env.contains(
            &json!({"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "github", "key": "GITHUB_TOKEN", "optional": false}}})
        ),
        "{env:?}"
    );
    assert!(
        !format!("{spec:?}").contains("ghp_secret"),
        "Debug shows secret values"
    );
    assert!(
        !d.to_string().contains("ghp_secret"),
        "the secret value leaked into the Deployment"
    );

    assert_eq!(
        bounded(runtime.status("github")).await.unwrap(),
        InstallationStatus::Available {
            ready: 1,
            desired: 1
        }
    );
}

#[tokio::test]
async fn ensure_updates_on_change_and_reapplies_identically_when_unchanged() {
    let (fake, runtime) = FakeApi::start(config());
    let mut spec = stdio_spec("github");
    bounded(runtime.ensure(&spec)).await.unwrap();
    let first = fake.take();
    let [secret, _, deployment] = paths("github");
    let version = |path: &str| fake.object(path).unwrap()["metadata"]["resourceVersion"].clone();
    let (secret_v, deployment_v) = (version(&secret), version(&deployment));

    // Unchanged: the same three applies, byte for byte, so the API server stores nothing new
    // and no rollout starts; the Deployment is available at once, no polling.
    bounded(runtime.ensure(&spec)).await.unwrap();
    let again = fake.take();
    let applies = |seen: &[Seen]| -> Vec<(String, Option<Value>)> {
        seen.iter()
            .filter(|s| s.method == "PATCH")
            .map(|s| (s.path.clone(), s.body.clone()))
            .collect()
    };
    // (The first ensure also created the Deployment without replicas before the others.)
    assert_eq!(applies(&again), applies(&first)[1..]);
    assert_eq!(again.len(), 6, "{:?}", summary(&again));
    assert_eq!(
        (version(&secret), version(&deployment)),
        (secret_v.clone(), deployment_v.clone())
    );

    // A changed secret value: the Secret changes, and its new version on the pod template
    // rolls the Deployment.
    spec.secret_env = vec![("GITHUB_TOKEN".into(), "ghp_rotated".into())];
    bounded(runtime.ensure(&spec)).await.unwrap();
    let rotated = fake.take();
    assert_ne!(version(&secret), secret_v);
    let applied_deployment = rotated
        .iter()
        .find(|s| s.method == "PATCH" && s.path == deployment)
        .and_then(|s| s.body.clone())
        .unwrap();
    assert_eq!(
        applied_deployment["spec"]["template"]["metadata"]["annotations"]["sluice.dev/secret-version"],
        version(&secret)
    );
    assert_ne!(version(&deployment), deployment_v);

    // A changed image and resources: the Deployment is re-applied with them.
    spec.image = Some("ghcr.example/github-mcp:2".into());
    spec.resources = Some(Resources {
        memory_limit: Some("1Gi".into()),
        ..Resources::default()
    });
    bounded(runtime.ensure(&spec)).await.unwrap();
    let stored = fake.object(&deployment).unwrap();
    let c = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.example/github-mcp:2");
    assert_eq!(c["resources"], json!({"limits": {"memory": "1Gi"}}));
}

#[tokio::test]
async fn ensure_corrects_drift() {
    let (fake, runtime) = FakeApi::start(config());
    let spec = stdio_spec("github");
    bounded(runtime.ensure(&spec)).await.unwrap();
    let [_, service, deployment] = paths("github");
    let desired = fake.object(&deployment).unwrap();

    // Someone edits the image and deletes the Service.
    let mut drifted = desired.clone();
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
    fake.put(&deployment, drifted);
    fake.state().objects.remove(&service);
    fake.take();

    bounded(runtime.ensure(&spec)).await.unwrap();
    let stored = fake.object(&deployment).unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/sluice:1.0"
    );
    assert!(fake.object(&service).is_some(), "the Service is back");

    // Someone deletes the Deployment; the garbage collector then takes the Service and the
    // Secret it owns (imitated here: the fake has no collector). All three come back, the
    // Service and Secret owned by the new Deployment.
    let old_uid = fake.object(&deployment).unwrap()["metadata"]["uid"].clone();
    for path in paths("github") {
        fake.state().objects.remove(&path);
    }
    bounded(runtime.ensure(&spec)).await.unwrap();
    let new_uid = fake.object(&deployment).unwrap()["metadata"]["uid"].clone();
    assert_ne!(new_uid, old_uid);
    for path in &paths("github")[..2] {
        let owners = &fake.object(path).unwrap()["metadata"]["ownerReferences"];
        assert_eq!(owners[0]["uid"], new_uid, "{path}: {owners}");
        assert_eq!(owners.as_array().unwrap().len(), 1, "{path}: {owners}");
    }
    assert_eq!(fake.object(&deployment).unwrap()["spec"]["replicas"], 1);
}

#[tokio::test]
async fn http_servers_run_as_they_are_on_the_mcp_port() {
    let (fake, runtime) = FakeApi::start(config());
    let spec = InstallationSpec {
        name: "search".into(),
        command: "/app/server".into(),
        args: vec!["--port".into(), "{port}".into()],
        env: vec![],
        secret_env: vec![],
        transport: Transport::Http {
            path: "/v1/mcp".into(),
        },
        image: Some("ghcr.example/search:3".into()),
        resources: None,
    };
    let endpoint = bounded(runtime.ensure(&spec)).await.unwrap();
    assert_eq!(endpoint.url, "http://search.mcp.svc:8080/v1/mcp");
    let [secret, _, deployment] = paths("search");
    let c = fake.object(&deployment).unwrap()["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(c["image"], "ghcr.example/search:3");
    assert_eq!(c["command"], json!(["/app/server"]));
    assert_eq!(c["args"], json!(["--port", "8080"]));
    assert!(c.get("resources").is_none(), "{c}");
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "PORT", "value": "8080"}))
    );
    // No secret variables: the Secret is still made, empty, so every installation owns the same three objects.
    assert_eq!(fake.object(&secret).unwrap()["data"], json!({}));
}

#[tokio::test]
async fn invalid_specs_are_refused_before_any_request() {
    let (fake, runtime) = FakeApi::start(config());
    let mut bad_name = stdio_spec("2fa");
    bad_name.name = "2fa".into();
    let mut http_without_image = stdio_spec("web");
    http_without_image.transport = Transport::Http {
        path: "/mcp".into(),
    };
    let mut twice = stdio_spec("dup");
    twice.env.push(("GITHUB_TOKEN".into(), "plain".into()));
    let mut bad_key = stdio_spec("key");
    bad_key.secret_env = vec![("A KEY".into(), "v".into())];
    let mut bad_quantity = stdio_spec("q");
    bad_quantity.resources = Some(Resources {
        cpu_limit: Some("1 core; rm -rf".into()),
        ..Resources::default()
    });
    for spec in [bad_name, http_without_image, twice, bad_key, bad_quantity] {
        let result = bounded(runtime.ensure(&spec)).await;
        assert!(
            matches!(result, Err(RuntimeError::Invalid { .. })),
            "{}: {result:?}",
            spec.name
        );
    }
    // Names no installation can have are unknown, without a request (they would otherwise
    // end up in URL paths and label selectors).
    for name in ["../secrets/other", "a,b=c", "", "UPPER"] {
        let status = bounded(runtime.status(name)).await;
        assert!(
            matches!(status, Err(RuntimeError::Unknown(_))),
            "{name}: {status:?}"
        );
        let logs = bounded(runtime.logs(name)).await;
        assert!(
            matches!(logs, Err(RuntimeError::Unknown(_))),
            "{name}: {logs:?}"
        );
        let removed = bounded(runtime.remove(name)).await;
        assert!(
            matches!(removed, Err(RuntimeError::Unknown(_))),
            "{name}: {removed:?}"
        );
    }
    assert!(fake.take().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn objects_sluice_did_not_make_are_neither_taken_over_nor_deleted() {
    let (fake, runtime) = FakeApi::start(config());
    let [secret, service, deployment] = paths("billing");
    let foreign = json!({"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "billing", "namespace": NS, "uid": "u-1",
        "labels": {"app.kubernetes.io/managed-by": "Helm"}}});
    fake.put(&service, foreign.clone());

    let result = bounded(runtime.ensure(&stdio_spec("billing"))).await;
    assert!(
        matches!(&result, Err(RuntimeError::Invalid { reason, .. }) if reason.contains("not made by Sluice")),
        "{result:?}"
    );
    assert_eq!(
        fake.object(&service),
        Some(foreign.clone()),
        "left as it was"
    );
    // Checked before anything was written: nothing applied at all.
    let seen = fake.take();
    assert!(
        seen.iter().all(|s| s.method == "GET"),
        "{:?}",
        summary(&seen)
    );
    assert!(fake.object(&secret).is_none());
    assert!(fake.object(&deployment).is_none());

    // Nothing of this installation is Sluice's: remove deletes nothing and says so.
    assert!(matches!(
        bounded(runtime.remove("billing")).await,
        Err(RuntimeError::Unknown(_))
    ));
    assert_eq!(fake.object(&service), Some(foreign));
    assert!(fake.take().iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn remove_deletes_the_three_objects_with_uid_preconditions() {
    let (fake, runtime) = FakeApi::start(config());
    bounded(runtime.ensure(&stdio_spec("github")))
        .await
        .unwrap();
    let uids: Vec<Value> = paths("github")
        .iter()
        .map(|p| fake.object(p).unwrap()["metadata"]["uid"].clone())
        .collect();
    fake.take();

    bounded(runtime.remove("github")).await.unwrap();
    let seen = fake.take();
    let [secret, service, deployment] = paths("github");
    assert_eq!(
        summary(&seen),
        vec![
            format!("GET {deployment}"),
            format!("DELETE {deployment}"),
            format!("GET {service}"),
            format!("DELETE {service}"),
            format!("GET {secret}"),
            format!("DELETE {secret}"),
        ]
    );
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    for (delete, uid) in deletes.iter().zip([&uids[2], &uids[1], &uids[0]]) {
        let body = delete.body.as_ref().expect("delete options");
        assert_eq!(body["propagationPolicy"], "Background");
        assert_eq!(&body["preconditions"]["uid"], uid);
    }
    for path in paths("github") {
        assert!(fake.object(&path).is_none(), "{path} is gone");
    }
    assert!(matches!(
        bounded(runtime.remove("github")).await,
        Err(RuntimeError::Unknown(_))
    ));
    assert!(matches!(
        bounded(runtime.status("github")).await,
        Err(RuntimeError::Unknown(_))
    ));
}

#[tokio::test]
async fn logs_come_from_the_newest_pod_bounded() {
    let (fake, runtime) = FakeApi::start(config());
    bounded(runtime.ensure(&stdio_spec("github")))
        .await
        .unwrap();
    let pod = |name: &str, created: &str, installation: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": NS, "creationTimestamp": created,
            "labels": {"sluice.dev/installation": installation, "app.kubernetes.io/managed-by": "sluice"}}})
    };
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    fake.put(
        &format!("{pods}/github-old"),
        pod("github-old", "2026-01-01T00:00:00Z", "github"),
    );
    fake.put(
        &format!("{pods}/github-new"),
        pod("github-new", "2026-01-02T00:00:00Z", "github"),
    );
    fake.put(
        &format!("{pods}/other-x"),
        pod("other-x", "2026-01-03T00:00:00Z", "other"),
    );
    fake.take();

    let lines = bounded(runtime.logs("github")).await.unwrap();
    assert_eq!(
        lines,
        (1..=5).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let seen = fake.take();
    assert_eq!(seen[0].path, pods);
    assert_eq!(
        query_value(&seen[0].query, "labelSelector").as_deref(),
        Some("sluice.dev/installation=github,app.kubernetes.io/managed-by=sluice")
    );
    assert_eq!(seen[1].path, format!("{pods}/github-new/log"));
    let query: Vec<_> = url_pairs(&seen[1].query).collect();
    for expected in [
        ("container", "server"),
        ("tailLines", "200"),
        ("limitBytes", "1048576"),
    ] {
        assert!(
            query.contains(&(expected.0.into(), expected.1.into())),
            "{query:?}"
        );
    }
    assert!(matches!(
        bounded(runtime.logs("nothing")).await,
        Err(RuntimeError::Unknown(_))
    ));
}

#[tokio::test]
async fn ensure_gives_up_when_the_rollout_does_not_finish_in_time() {
    let mut config = config();
    config.bounds.healthy_within = Duration::from_millis(200);
    let (fake, runtime) = FakeApi::start(config);
    fake.state().rollouts_complete = false;
    let result = bounded(runtime.ensure(&stdio_spec("slow"))).await;
    assert!(
        matches!(&result, Err(RuntimeError::Start { reason, .. }) if reason.contains("not available within")),
        "{result:?}"
    );
    assert!(matches!(
        bounded(runtime.status("slow")).await,
        Ok(InstallationStatus::Starting { .. })
    ));
}

#[tokio::test]
async fn changes_list_sluices_deployments_then_report_drift_as_it_happens() {
    let (fake, runtime) = FakeApi::start(config());
    let [_, _, gone] = paths("gone");
    let [_, _, theirs] = paths("theirs");
    let [_, _, borrowed] = paths("borrowed");
    fake.put(&gone, fake_kube::found(&gone, Some("gone")));
    fake.put(&theirs, fake_kube::found(&theirs, None));
    // Sluice's labels, but for another installation than its name: not Sluice's own.
    fake.put(&borrowed, fake_kube::found(&borrowed, Some("gone")));
    // Polled all along, as the orchestrator's select does: the watch starts only when polled.
    let mut stream = runtime
        .changes()
        .expect("the kubernetes backend reports changes");
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(change) = stream.next().await {
            if tx.send(change).is_err() {
                return;
            }
        }
    });

    let first = bounded(changes.recv()).await;
    assert_eq!(first, Some(Change::Present(["gone".to_owned()].into())));
    fake.until("watching", |s| !s.watches.is_empty()).await;
    let seen = fake.take();
    let list = seen.first().expect("a list");
    assert_eq!(
        query_value(&list.query, "labelSelector").as_deref(),
        Some("app.kubernetes.io/managed-by=sluice"),
        "{seen:?}"
    );
    // The watch starts where the list left off.
    assert!(
        seen.iter().any(|s| {
            query_value(&s.query, "watch").as_deref() == Some("true")
                && query_value(&s.query, "resourceVersion").is_some()
        }),
        "{seen:?}"
    );

    // Deleted behind Sluice's back: drift, at once.
    fake.delete_behind(&gone);
    assert_eq!(bounded(changes.recv()).await, Some(Change::Drifted));
    // A Deployment Sluice makes is seen too (the orchestrator's own applies wake it once
    // more, and only while something it acts on moves; see the unit tests of `watch`).
    bounded(runtime.ensure(&stdio_spec("files")))
        .await
        .expect("ensure");
    assert_eq!(bounded(changes.recv()).await, Some(Change::Drifted));
}
