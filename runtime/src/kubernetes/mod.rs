//! The `kubernetes` backend: each installation is a Deployment, a Service and a Secret in one
//! namespace, reached at `http://NAME.NAMESPACE.svc:8080/mcp`.
//!
//! `ensure` applies the three objects with server-side apply (field manager `sluice`, forced);
//! the Service and Secret are owned by the Deployment (see [`render`]), so a new installation's
//! Deployment is created first, with no replicas, to learn its uid.
//! Applying on every reconcile pass is what corrects drift (an edited image, a deleted
//! Service, a changed secret key), and it costs the cluster nothing when nothing differs: an
//! apply that changes no field is not persisted, bumps no generation and starts no rollout.
//! Before applying, the three objects are read: a same-named object that Sluice did not make
//! (no `app.kubernetes.io/managed-by: sluice` label for this installation) is never taken over,
//! and `remove` deletes only objects carrying those labels, with a UID precondition so an
//! object recreated meanwhile by someone else survives. The Secret is applied first and its
//! resourceVersion stamped on the pod template, so a changed secret rolls the pods; then
//! `ensure` waits, bounded, until the Deployment's current spec is available.
//!
//! [`Runtime::changes`] watches Sluice's Deployments (see [`watch`]), so drift and orphans are
//! acted on as they happen rather than at the orchestrator's next resync.
//!
//! The backend takes a [`kube::Client`]: in the cluster `Client::try_default()` (the pod's
//! service account, see [`KubernetesRuntime::infer`]), elsewhere a kubeconfig, and in tests a
//! mock service.

mod render;
mod rollout;
mod watch;

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, Preconditions};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Runtime;
use crate::backoff::Backoff;
use crate::installation::{
    Change, Endpoint, InstallationSpec, InstallationStatus, RuntimeError, StartBounds,
};

pub use render::{CONTAINER, INSTALLATION, MANAGED_BY, MCP_PORT, SECRET_VERSION};
pub use rollout::Rollout;

/// The field manager of Sluice's server-side applies.
pub const FIELD_MANAGER: &str = "sluice";

/// How the backend places installations.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The namespace every installation lives in.
    pub namespace: String,
    /// The image stdio servers run in when their spec names none: it must hold `sluice` on
    /// `PATH` (the bridge) and whatever the server's command needs.
    pub bridge_image: String,
    /// Set as the owner of every Deployment made (e.g. control's StatefulSet), so deleting the
    /// owner garbage-collects the installations (their Services and Secrets are owned by their
    /// Deployments); it must live in `namespace`.
    pub owner: Option<OwnerReference>,
    /// `imagePullPolicy` of the server container; absent, the cluster's default.
    pub image_pull_policy: Option<String>,
    /// The pods' user, group and fsGroup (images whose own user is root cannot otherwise pass
    /// `runAsNonRoot`); `None` keeps the image's user, which must then be non-root.
    pub run_as_user: Option<i64>,
    /// How long `ensure` waits for the Deployment to become available.
    pub bounds: StartBounds,
    /// The first pause between status reads while waiting (doubling up to 2 s).
    pub poll: Duration,
    /// How many of the newest log lines `logs` returns.
    pub log_lines: u32,
}

impl KubernetesConfig {
    /// The defaults for `namespace` and `bridge_image`.
    pub fn new(namespace: impl Into<String>, bridge_image: impl Into<String>) -> Self {
        KubernetesConfig {
            namespace: namespace.into(),
            bridge_image: bridge_image.into(),
            owner: None,
            image_pull_policy: None,
            run_as_user: Some(65532),
            bounds: StartBounds {
                healthy_within: Duration::from_secs(120),
            },
            poll: Duration::from_millis(250),
            log_lines: 200,
        }
    }
}

/// Installations as Deployments on a Kubernetes cluster.
#[derive(Clone)]
pub struct KubernetesRuntime {
    client: Client,
    config: KubernetesConfig,
}

impl Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KubernetesRuntime {
    /// A backend talking through `client`.
    pub fn new(client: Client, config: KubernetesConfig) -> Self {
        KubernetesRuntime { client, config }
    }

    /// A backend with the client `kube` infers: in a pod, its service account; elsewhere
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub async fn infer(config: KubernetesConfig) -> Result<Self, RuntimeError> {
        let client = Client::try_default().await.map_err(|e| RuntimeError::Api {
            name: String::new(),
            action: "connect to the cluster".to_owned(),
            status: None,
            reason: e.to_string(),
        })?;
        Ok(Self::new(client, config))
    }

    /// Its config.
    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn url(&self, spec: &InstallationSpec) -> String {
        format!(
            "http://{}.{}.svc:{MCP_PORT}{}",
            spec.name,
            self.config.namespace,
            render::mcp_path(spec)
        )
    }

    /// Reads `name` and refuses if it exists but is not this installation's.
    async fn get_ours<K>(&self, name: &str) -> Result<Option<K>, RuntimeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let kind = K::kind(&());
        let found = self
            .api::<K>()
            .get_opt(name)
            .await
            .map_err(|e| api_error(name, &format!("read {kind}"), e))?;
        match found {
            Some(object) if !render::is_ours(object.meta(), name) => Err(RuntimeError::Invalid {
                name: name.to_owned(),
                reason: format!(
                    "a {kind} named `{name}` exists in namespace `{}` and was not made by Sluice \
                     for this installation; it is left alone",
                    self.config.namespace
                ),
            }),
            other => Ok(other),
        }
    }

    /// Server-side-applies `object` (call [`Self::get_ours`] first: a forced apply takes over
    /// whatever fields it names).
    async fn apply<K>(&self, object: &K) -> Result<K, RuntimeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Serialize
            + Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        let kind = K::kind(&());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api::<K>()
            .patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| api_error(&name, &format!("apply {kind}"), e))
    }

    /// Waits, bounded, until `applied`'s rollout is done, reading it again between tries.
    async fn wait_available(&self, applied: Deployment) -> Result<(), RuntimeError> {
        let name = applied.metadata.name.clone().unwrap_or_default();
        let bound = self.config.bounds.healthy_within;
        let mut last = rollout::rollout(&applied);
        let mut pause = Backoff::new(self.config.poll, Duration::from_secs(2));
        let wait = async {
            loop {
                match &last {
                    Rollout::Done { .. } => return Ok(()),
                    Rollout::Failed(why) => return Err(why.clone()),
                    Rollout::Progressing(_) => {}
                }
                tokio::time::sleep(pause.next_delay()).await;
                let current = self
                    .api::<Deployment>()
                    .get_opt(&name)
                    .await
                    .map_err(|e| api_error(&name, "read Deployment", e).to_string())?
                    .ok_or_else(|| "the Deployment was deleted while starting".to_owned())?;
                last = rollout::rollout(&current);
            }
        };
        let outcome = match tokio::time::timeout(bound, wait).await {
            Ok(outcome) => outcome,
            Err(_) => Err(match &last {
                Rollout::Progressing(Some(why)) => {
                    format!("not available within {bound:?}: {why}")
                }
                _ => format!("not available within {bound:?}"),
            }),
        };
        outcome.map_err(|reason| RuntimeError::Start { name, reason })
    }

    async fn delete_ours<K>(&self, name: &str) -> Result<bool, RuntimeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let kind = K::kind(&());
        let found = match self.get_ours::<K>(name).await {
            Ok(found) => found,
            Err(RuntimeError::Invalid { .. }) => {
                tracing::warn!("[{name}] a {kind} of that name is not Sluice's: not deleted");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let Some(object) = found else {
            return Ok(false);
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.meta().uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.api::<K>().delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_error(name, &format!("delete {kind}"), e)),
        }
    }
}

/// A name `ensure` would have refused names nothing here; refusing it before any request
/// also keeps it out of URL paths and label selectors.
fn known_name(name: &str) -> Result<(), RuntimeError> {
    if render::is_dns_label(name) {
        Ok(())
    } else {
        Err(RuntimeError::Unknown(name.to_owned()))
    }
}

fn api_error(name: &str, action: &str, error: kube::Error) -> RuntimeError {
    let (status, reason) = match &error {
        kube::Error::Api(s) => (Some(s.code), s.message.clone()),
        other => (None, other.to_string()),
    };
    RuntimeError::Api {
        name: name.to_owned(),
        action: action.to_owned(),
        status,
        reason,
    }
}

#[async_trait]
impl Runtime for KubernetesRuntime {
    async fn ensure(&self, spec: &InstallationSpec) -> Result<Endpoint, RuntimeError> {
        render::validate(spec, &self.config)?;
        // All three are checked before anything is written: a foreign object of the same
        // name refuses the installation without leaving half of it behind.
        self.get_ours::<Secret>(&spec.name).await?;
        self.get_ours::<Service>(&spec.name).await?;
        let existing = self.get_ours::<Deployment>(&spec.name).await?;
        // The Secret and Service name the Deployment as their owner, so it must exist first;
        // a new one is created without replicas until its Secret is there.
        let owner = match existing {
            Some(d) => d,
            None => self.apply(&render::placeholder(spec, &self.config)).await?,
        };
        let owner = render::owned_by(&owner);
        let secret = self
            .apply(&render::secret(spec, &self.config, owner.clone()))
            .await?;
        self.apply(&render::service(spec, &self.config, owner))
            .await?;
        let version = secret.metadata.resource_version.as_deref();
        let deployment = self
            .apply(&render::deployment(spec, &self.config, version))
            .await?;
        self.wait_available(deployment).await?;
        Ok(Endpoint {
            url: self.url(spec),
        })
    }

    async fn status(&self, name: &str) -> Result<InstallationStatus, RuntimeError> {
        known_name(name)?;
        let deployment = self
            .get_ours::<Deployment>(name)
            .await
            .map_err(|e| match e {
                RuntimeError::Invalid { .. } => RuntimeError::Unknown(name.to_owned()),
                other => other,
            })?
            .ok_or_else(|| RuntimeError::Unknown(name.to_owned()))?;
        Ok(rollout::status(rollout::rollout(&deployment)))
    }

    async fn logs(&self, name: &str) -> Result<Vec<String>, RuntimeError> {
        known_name(name)?;
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&render::selector(name)))
            .await
            .map_err(|e| api_error(name, "list pods", e))?;
        let newest = pods
            .items
            .into_iter()
            .filter_map(|p| {
                p.metadata
                    .name
                    .clone()
                    .map(|n| (p.metadata.creation_timestamp, n))
            })
            .max();
        let Some((_, pod)) = newest else {
            // No pod (yet): an installation that exists has no logs; one that does not is unknown.
            return match self.status(name).await {
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        };
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            tail_lines: Some(i64::from(self.config.log_lines)),
            limit_bytes: Some(1 << 20),
            ..LogParams::default()
        };
        let text = self
            .api::<Pod>()
            .logs(&pod, &params)
            .await
            .map_err(|e| api_error(name, "read pod logs", e))?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        known_name(name)?;
        // The Deployment first: its pods stop using the Secret before it goes.
        let mut removed = self.delete_ours::<Deployment>(name).await?;
        removed |= self.delete_ours::<Service>(name).await?;
        removed |= self.delete_ours::<Secret>(name).await?;
        if removed {
            Ok(())
        } else {
            Err(RuntimeError::Unknown(name.to_owned()))
        }
    }

    fn changes(&self) -> Option<futures_util::stream::BoxStream<'static, Change>> {
        Some(watch::changes(self.api()))
    }
}
