//! The objects one installation becomes: a Deployment, a Service and a Secret, rendered as
//! pure data from the spec and the backend's config, so what Sluice asks of a cluster can be
//! read (and tested) without one.
//!
//! The Service and the Secret are owned by the Deployment (an owner reference with its uid,
//! `blockOwnerDeletion`), so the cluster's garbage collector removes them when the Deployment
//! goes, whoever deletes it; the Deployment itself is owned by the configured owner (control's
//! StatefulSet), if any. `controller` is false: Sluice manages them, not the Deployment
//! controller.
//!
//! Every pod runs locked down: non-root, read-only root filesystem, no privilege escalation,
//! no capabilities, the runtime's default seccomp profile, no service-account token and no
//! service-link variables. An MCP server rarely needs more, and one that runs third-party
//! code with the caller's credentials should get no more. `/tmp` is a size-bounded emptyDir
//! and `HOME` points there, because `npx`/`uvx`-launched servers write caches under `HOME`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec, TCPSocketAction,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::KubernetesConfig;
use crate::installation::{InstallationSpec, Resources, RuntimeError, Transport};

/// The port every installation's container listens on, and its Service exposes.
pub const MCP_PORT: u16 = 8080;
/// The name of the server's container in the pod (`logs` reads it).
pub const CONTAINER: &str = "server";
/// `app.kubernetes.io/managed-by`: only objects carrying `sluice` are ever changed or deleted.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The installation an object belongs to; the Deployment's selector and `logs` use it.
pub const INSTALLATION: &str = "sluice.dev/installation";
/// On the pod template: the Secret's resourceVersion, so a changed secret rolls the pods
/// (env vars from a Secret are read only when a container starts).
pub const SECRET_VERSION: &str = "sluice.dev/secret-version";

const TMP_SIZE: &str = "256Mi";

/// The labels of every object made for installation `name`.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "mcp-server".to_owned(),
        ),
        (MANAGED_BY.to_owned(), "sluice".to_owned()),
        (INSTALLATION.to_owned(), name.to_owned()),
    ])
}

/// The label selector matching installation `name`'s pods.
pub fn selector(name: &str) -> String {
    format!("{INSTALLATION}={name},{MANAGED_BY}=sluice")
}

/// Whether an object found in the cluster was made by this backend for installation `name`.
pub fn is_ours(meta: &ObjectMeta, name: &str) -> bool {
    let labels = meta.labels.as_ref();
    let get = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    get(MANAGED_BY) == Some("sluice") && get(INSTALLATION) == Some(name)
}

/// Checks what Kubernetes would refuse later with a less helpful message, or what would
/// render an object other than the one asked for.
pub fn validate(spec: &InstallationSpec, config: &KubernetesConfig) -> Result<(), RuntimeError> {
    let invalid = |reason: String| RuntimeError::Invalid {
        name: spec.name.clone(),
        reason,
    };
    if !is_dns_label(&spec.name) {
        return Err(invalid(
            "a Kubernetes installation name must be 1 to 63 of `[a-z0-9-]`, start with a letter \
             and end with a letter or digit (it names the Service)"
                .to_owned(),
        ));
    }
    if spec.command.is_empty() {
        return Err(invalid("the command is empty".to_owned()));
    }
    if matches!(spec.transport, Transport::Http { .. }) && spec.image.is_none() {
        return Err(invalid(
            "an HTTP server needs an image (only stdio servers default to the bridge image)"
                .to_owned(),
        ));
    }
    if spec.image.is_none() && config.bridge_image.is_empty() {
        return Err(invalid(
            "no image, and no bridge image configured".to_owned(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (key, _) in spec.env.iter().chain(&spec.secret_env) {
        if key.is_empty() || key.contains('=') || key.chars().any(char::is_control) {
            return Err(invalid(format!(
                "invalid environment variable name {key:?}"
            )));
        }
        if !seen.insert(key.as_str()) {
            return Err(invalid(format!(
                "environment variable `{key}` is given twice"
            )));
        }
    }
    for (key, _) in &spec.secret_env {
        // A Secret's keys are the variable names: Kubernetes allows only these characters.
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(format!(
                "secret environment variable `{key}`: only `[-._a-zA-Z0-9]` may name a secret"
            )));
        }
    }
    if let Some(resources) = &spec.resources {
        for (what, value) in resource_entries(resources) {
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(invalid(format!("{what} {value:?} is not a quantity")));
            }
        }
    }
    Ok(())
}

/// Whether `name` can name this backend's objects (and is safe in a path or selector).
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

fn resource_entries(r: &Resources) -> impl Iterator<Item = (&'static str, &String)> {
    [
        ("cpu request", &r.cpu_request),
        ("memory request", &r.memory_request),
        ("cpu limit", &r.cpu_limit),
        ("memory limit", &r.memory_limit),
    ]
    .into_iter()
    .filter_map(|(what, v)| v.as_ref().map(|v| (what, v)))
}

fn metadata(
    spec: &InstallationSpec,
    config: &KubernetesConfig,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(spec.name.clone()),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels(&spec.name)),
        owner_references: owner.or_else(|| config.owner.clone()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The owner reference naming `deployment` (as stored: it needs the uid the cluster gave it).
pub fn owned_by(deployment: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: deployment.metadata.name.clone()?,
        uid: deployment.metadata.uid.clone()?,
        controller: Some(false),
        block_owner_deletion: Some(true),
    })
}

/// The Secret holding the installation's secret environment, one key per variable, owned by
/// `owner` (the Deployment). It is made even when empty, so every installation owns the same
/// three objects.
pub fn secret(
    spec: &InstallationSpec,
    config: &KubernetesConfig,
    owner: Option<OwnerReference>,
) -> Secret {
    Secret {
        metadata: metadata(spec, config, owner),
        type_: Some("Opaque".to_owned()),
        data: Some(
            spec.secret_env
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The ClusterIP Service the gateway reaches the installation through, owned by `owner`
/// (the Deployment).
pub fn service(
    spec: &InstallationSpec,
    config: &KubernetesConfig,
    owner: Option<OwnerReference>,
) -> Service {
    Service {
        metadata: metadata(spec, config, owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&spec.name)),
            ports: Some(vec![ServicePort {
                name: Some("mcp".to_owned()),
                port: i32::from(MCP_PORT),
                target_port: Some(IntOrString::String("mcp".to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: Some("http".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTALLATION.to_owned(), name.to_owned()),
        (MANAGED_BY.to_owned(), "sluice".to_owned()),
    ])
}

/// The path of the MCP endpoint inside the container.
pub fn mcp_path(spec: &InstallationSpec) -> &str {
    match &spec.transport {
        Transport::Stdio => "/mcp",
        Transport::Http { path } => path,
    }
}

/// The Deployment running the server: one replica, wrapped by the bridge when it speaks
/// stdio. `secret_version` is the applied Secret's resourceVersion.
///
/// The bridge runs without `--restart`: when the server exits the bridge exits, and the
/// kubelet restarts the container with its own backoff, which the pod's restart count and
/// events then show. One replica, because a stateful MCP server's sessions live in it.
pub fn deployment(
    spec: &InstallationSpec,
    config: &KubernetesConfig,
    secret_version: Option<&str>,
) -> Deployment {
    let port = MCP_PORT.to_string();
    let (image, command, args) = match &spec.transport {
        Transport::Stdio => {
            let mut args = vec![
                "bridge".to_owned(),
                "--listen".to_owned(),
                format!("0.0.0.0:{MCP_PORT}"),
                "--name".to_owned(),
                spec.name.clone(),
                "--".to_owned(),
                spec.command.clone(),
            ];
            args.extend(spec.args.iter().cloned());
            let image = spec.image.clone().unwrap_or(config.bridge_image.clone());
            (image, vec!["sluice".to_owned()], args)
        }
        Transport::Http { .. } => (
            spec.image.clone().unwrap_or_default(),
            vec![spec.command.clone()],
            spec.args
                .iter()
                .map(|a| a.replace("{port}", &port))
                .collect(),
        ),
    };

    let mut env = vec![plain("PORT", &port)];
    if !spec
        .env
        .iter()
        .chain(&spec.secret_env)
        .any(|(k, _)| k == "HOME")
    {
        env.push(plain("HOME", "/tmp"));
    }
    env.extend(spec.env.iter().map(|(k, v)| plain(k, v)));
    env.extend(spec.secret_env.iter().map(|(k, _)| EnvVar {
        name: k.clone(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: spec.name.clone(),
                key: k.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }));

    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(image),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(command),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("mcp".to_owned()),
            container_port: i32::from(MCP_PORT),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("mcp".to_owned()),
                ..TCPSocketAction::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: spec.resources.as_ref().map(resources),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };

    let annotations =
        secret_version.map(|v| BTreeMap::from([(SECRET_VERSION.to_owned(), v.to_owned())]));

    Deployment {
        metadata: metadata(spec, config, None),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            revision_history_limit: Some(2),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&spec.name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&spec.name)),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: config.run_as_user,
                        run_as_group: config.run_as_user,
                        fs_group: config.run_as_user,
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![Volume {
                        name: "tmp".to_owned(),
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(Quantity(TMP_SIZE.to_owned())),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Deployment as first created, before its Secret and Service exist (they need its uid
/// to name it their owner): no replicas, so no pod starts without its Secret.
pub fn placeholder(spec: &InstallationSpec, config: &KubernetesConfig) -> Deployment {
    let mut d = deployment(spec, config, None);
    if let Some(s) = d.spec.as_mut() {
        s.replicas = Some(0);
    }
    d
}

fn plain(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

fn resources(r: &Resources) -> ResourceRequirements {
    let map = |pairs: [(&str, &Option<String>); 2]| {
        let m: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), Quantity(v.clone()))))
            .collect();
        (!m.is_empty()).then_some(m)
    };
    ResourceRequirements {
        requests: map([("cpu", &r.cpu_request), ("memory", &r.memory_request)]),
        limits: map([("cpu", &r.cpu_limit), ("memory", &r.memory_limit)]),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "github", "my-server-2", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "2fa", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
