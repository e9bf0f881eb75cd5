//! The Helm chart in `deploy/helm/sluice`: its files are the expected ones, `helm lint` passes,
//! and every manifest `helm template` renders is a valid Kubernetes object.
//!
//! "Valid" is checked by deserialising each rendered document into its k8s-openapi type and
//! serialising it back: k8s-openapi ignores unknown fields, so a round trip that loses or
//! changes anything means a misspelt or mistyped field. The rendered `proxy.toml` and
//! `control.toml` are loaded by the proxy's and control's own config loaders. Rendering needs the real `helm` binary
//! (`scripts/install-helm.sh` installs it; `SLUICE_HELM` overrides where it is looked for);
//! nothing here imitates it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/sluice")
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn chart_files_are_the_expected_ones() {
    let chart_yaml = yaml_file(&chart().join("Chart.yaml"));
    assert_eq!(chart_yaml["apiVersion"], "v2");
    assert_eq!(chart_yaml["name"], "sluice");
    assert_eq!(chart_yaml["type"], "application");

    let values = yaml_file(&chart().join("values.yaml"));
    for pointer in [
        "/image/repository",
        "/secrets/existingSecret",
        "/control/persistence/size",
        "/control/rbac/create",
        "/proxy/preStopSleepSeconds",
        "/proxy/drainDelaySeconds",
        "/proxy/gracePeriodSeconds",
        "/proxy/autoscaling/maxReplicas",
        "/proxy/podDisruptionBudget/maxUnavailable",
        "/metrics/serviceMonitor/enabled",
        "/installations/networkPolicy/enabled",
        "/control/networkPolicy/enabled",
    ] {
        assert!(
            values.pointer(pointer).is_some(),
            "values.yaml has no {pointer}"
        );
    }
    assert_eq!(values["metrics"]["serviceMonitor"]["enabled"], false);

    let templates: BTreeSet<String> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "NOTES.txt",
        "_helpers.tpl",
        "control-configmap.yaml",
        "control-networkpolicy.yaml",
        "control-rbac.yaml",
        "control-service.yaml",
        "control-serviceaccount.yaml",
        "control-statefulset.yaml",
        "installations-networkpolicy.yaml",
        "proxy-configmap.yaml",
        "proxy-deployment.yaml",
        "proxy-hpa.yaml",
        "proxy-pdb.yaml",
        "proxy-service.yaml",
        "secret.yaml",
        "servicemonitor.yaml",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(templates, expected);
}

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_HELM") {
        return path.into();
    }
    let installed = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/sluice-helm/v4.1.4/helm"))
        .filter(|p| p.is_file());
    installed.unwrap_or_else(|| {
        panic!("helm is not installed: run scripts/install-helm.sh (or set SLUICE_HELM)")
    })
}

fn run_helm(args: &[&str]) -> String {
    let output = Command::new(helm()).args(args).output().expect("helm runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

const ALL_ON: &[&str] = &[
    "--set=secrets.create=true",
    "--set=secrets.controlKey=a2V5",
    "--set=secrets.adminToken=admin-token-0123456789",
    "--set=secrets.proxyToken=proxy-token-0123456789",
    "--set=secrets.sessionSecret=session-secret-0123456789-0123456789",
    "--set=metrics.serviceMonitor.enabled=true",
    "--set=proxy.autoscaling.enabled=false",
    "--set=proxy.replicas=3",
];

/// `helm template` with `extra` values, as (kind, document) pairs.
fn render(extra: &[&str]) -> Vec<(String, Value)> {
    let chart = chart();
    let mut args = vec![
        "template",
        "rel",
        chart.to_str().unwrap(),
        "--namespace",
        "mcp",
    ];
    args.extend_from_slice(extra);
    let text = run_helm(&args);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|doc| !doc.is_null())
        .map(|doc| (doc["kind"].as_str().expect("a kind").to_owned(), doc))
        .collect()
}

use serde::Deserialize;

/// Deserialises `doc` into `K` and back: any field k8s-openapi does not know, or a value of
/// the wrong type, shows up as a difference.
fn round_trip<K: DeserializeOwned + Serialize>(doc: &Value) -> K {
    let typed: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not a valid {}: {e}\n{doc:#}", doc["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(at) = first_difference(doc, &back, String::new()) {
        panic!(
            "{} {}: {at} is lost or changed in the round trip through k8s-openapi",
            doc["kind"], doc["metadata"]["name"]
        );
    }
    typed
}

/// The JSON pointer of the first place `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, format!("{at}/{k}")),
                    _ => Some(format!("{at}/{k}")),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{at}/{i}"))),
        _ => (a != b).then_some(at),
    }
}

fn validate(kind: &str, doc: &Value) {
    match kind {
        "Deployment" => drop(round_trip::<Deployment>(doc)),
        "StatefulSet" => drop(round_trip::<StatefulSet>(doc)),
        "Service" => drop(round_trip::<Service>(doc)),
        "ServiceAccount" => drop(round_trip::<ServiceAccount>(doc)),
        "ConfigMap" => drop(round_trip::<ConfigMap>(doc)),
        "Secret" => drop(round_trip::<Secret>(doc)),
        "Role" => drop(round_trip::<Role>(doc)),
        "RoleBinding" => drop(round_trip::<RoleBinding>(doc)),
        "HorizontalPodAutoscaler" => drop(round_trip::<HorizontalPodAutoscaler>(doc)),
        "PodDisruptionBudget" => drop(round_trip::<PodDisruptionBudget>(doc)),
        "NetworkPolicy" => drop(round_trip::<NetworkPolicy>(doc)),
        // A prometheus-operator CRD: not in k8s-openapi.
        "ServiceMonitor" => {
            assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
            assert_eq!(doc["spec"]["endpoints"][0]["port"], "admin");
            assert_eq!(doc["spec"]["endpoints"][0]["path"], "/metrics");
        }
        other => panic!("unexpected kind {other}"),
    }
}

fn kinds(docs: &[(String, Value)]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for (kind, _) in docs {
        *kinds.entry(kind.clone()).or_default() += 1;
    }
    kinds
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|(k, d)| k == kind && d["metadata"]["name"] == name)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn helm_lint_passes() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    run_helm(&["lint", "--strict", chart]);
    let mut all_on = vec!["lint", "--strict", chart];
    all_on.extend_from_slice(ALL_ON);
    run_helm(&all_on);
}

#[test]
fn rendered_manifests_are_valid_kubernetes_objects() {
    let defaults = render(&[]);
    let expected: BTreeMap<String, usize> = [
        ("ConfigMap", 2),
        ("Deployment", 1),
        ("HorizontalPodAutoscaler", 1),
        ("NetworkPolicy", 2),
        ("PodDisruptionBudget", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Service", 3),
        ("ServiceAccount", 1),
        ("StatefulSet", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds(&defaults), expected);

    let all_on = render(ALL_ON);
    let mut expected_all = expected.clone();
    expected_all.remove("HorizontalPodAutoscaler");
    expected_all.insert("Secret".into(), 1);
    expected_all.insert("ServiceMonitor".into(), 1);
    assert_eq!(kinds(&all_on), expected_all);

    for (kind, doc) in defaults.iter().chain(&all_on) {
        validate(kind, doc);
    }
    // The policy selects exactly the labels the kubernetes runtime gives installation pods
    // (runtime/tests/kubernetes.rs asserts them on the rendered pod template).
    let policy = find(&defaults, "NetworkPolicy", "rel-sluice-installations");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        json!({"app.kubernetes.io/managed-by": "sluice", "app.kubernetes.io/component": "mcp-server"})
    );
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8080);
    let proxy = find(&all_on, "Deployment", "rel-sluice-proxy");
    assert_eq!(proxy["spec"]["replicas"], 3);
    assert!(
        find(&defaults, "Deployment", "rel-sluice-proxy")["spec"]
            .get("replicas")
            .is_none()
    );
}

#[test]
fn control_rbac_is_namespaced_and_limited_to_what_the_runtime_uses() {
    let docs = render(&[]);
    let role: Role = round_trip(find(&docs, "Role", "rel-sluice-control"));
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in role.rules.unwrap_or_default() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                granted
                    .entry(format!("{group}/{resource}"))
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
    }
    let write = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let expected = BTreeMap::from([
        ("apps/deployments".to_owned(), set(&write)),
        // Owner references with blockOwnerDeletion on the Deployment.
        ("apps/deployments/finalizers".to_owned(), set(&["update"])),
        ("/services".to_owned(), set(&write)),
        ("/secrets".to_owned(), set(&write)),
        ("/pods".to_owned(), set(&["get", "list", "watch"])),
        ("/pods/log".to_owned(), set(&["get"])),
    ]);
    assert_eq!(granted, expected);
    assert!(
        !docs.iter().any(|(k, _)| k.starts_with("Cluster")),
        "nothing cluster-wide"
    );

    let binding: RoleBinding = round_trip(find(&docs, "RoleBinding", "rel-sluice-control"));
    assert_eq!(binding.role_ref.kind, "Role");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(subject.namespace.as_deref(), Some("mcp"));
    let control: StatefulSet = round_trip(find(&docs, "StatefulSet", "rel-sluice-control"));
    let spec = control.spec.unwrap();
    assert_eq!(
        spec.template.spec.as_ref().unwrap().service_account_name,
        Some(subject.name.clone())
    );
    let claim = &spec.volume_claim_templates.unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let mount = &spec.template.spec.unwrap().containers[0]
        .volume_mounts
        .clone()
        .unwrap()[0];
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        ("data", "/data")
    );
}

#[test]
fn proxy_drain_fits_in_the_termination_grace_period_and_its_config_loads() {
    let docs = render(&[
        "--set=proxy.preStopSleepSeconds=7",
        "--set=proxy.drainDelaySeconds=11",
        "--set=proxy.gracePeriodSeconds=13",
    ]);
    let proxy: Deployment = round_trip(find(&docs, "Deployment", "rel-sluice-proxy"));
    let pod = proxy.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(7 + 11 + 13 + 5));
    let container = &pod.containers[0];
    let sleep = container
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap()
        .sleep
        .as_ref();
    assert_eq!(sleep.map(|s| s.seconds), Some(7));
    let security = serde_json::to_value(container.security_context.as_ref().unwrap()).unwrap();
    assert_eq!(
        security,
        json!({"runAsNonRoot": true, "readOnlyRootFilesystem": true,
               "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
               "seccompProfile": {"type": "RuntimeDefault"}})
    );

    // The rendered proxy.toml is accepted by the proxy's own loader, with the drain settings.
    let config_map: ConfigMap = round_trip(find(&docs, "ConfigMap", "rel-sluice-proxy"));
    let toml = &config_map.data.unwrap()["proxy.toml"];
    let env = |key: &str| match key {
        "SLUICE_SESSION_SECRET" => Some("s".repeat(40)),
        "SLUICE_PROXY_TOKEN" => Some("p".repeat(24)),
        _ => None,
    };
    let config = sluice_config::load_str(toml, "proxy.toml", &env)
        .unwrap_or_else(|e| panic!("the rendered proxy.toml is refused: {e}\n{toml}"));
    assert_eq!(config.proxy.drain_delay, std::time::Duration::from_secs(11));
    assert_eq!(
        config.proxy.grace_period,
        std::time::Duration::from_secs(13)
    );

    // And the rendered control.toml by control's own loader.
    let control_map: ConfigMap = round_trip(find(&docs, "ConfigMap", "rel-sluice-control"));
    let toml = &control_map.data.unwrap()["control.toml"];
    let env = |key: &str| match key {
        "SLUICE_ADMIN_TOKEN" => Some("a".repeat(24)),
        "SLUICE_PROXY_TOKEN" => Some("p".repeat(24)),
        _ => None,
    };
    let control = sluice_control::ControlConfig::parse(toml, "control.toml", &env)
        .unwrap_or_else(|e| panic!("the rendered control.toml is refused: {e}\n{toml}"));
    assert_eq!(control.data_dir, Path::new("/data/control"));
    assert_eq!(control.listen.port(), 7070);
    assert_eq!(control.admin_tokens.len(), 1);
    assert_eq!(control.proxy_tokens.len(), 1);
    // The cluster only: no local processes inside control's pod.
    assert_eq!(
        control.runtime.kinds(),
        [sluice_control::model::RuntimeKind::Kubernetes]
    );
}
