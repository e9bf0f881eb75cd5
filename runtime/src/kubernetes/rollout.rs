//! Reading a Deployment's status: is the current spec rolled out and available, still on its
//! way, or stuck? The same judgement `kubectl rollout status` makes, so `ensure` returns only
//! once the pods running the spec it applied are ready, not while old ones still answer.

use k8s_openapi::api::apps::v1::Deployment;

use crate::installation::InstallationStatus;

/// Where a Deployment's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every desired replica runs the current spec and is available.
    Done {
        /// Replicas available and up to date.
        ready: u32,
        /// Replicas asked for.
        desired: u32,
    },
    /// Not there yet; the reason, when the status gives one.
    Progressing(Option<String>),
    /// The Deployment's progress deadline passed: Kubernetes has given up on this rollout.
    Failed(String),
}

/// Judges `deployment`'s rollout from its status.
pub fn rollout(deployment: &Deployment) -> Rollout {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0);
    let Some(status) = &deployment.status else {
        return Rollout::Progressing(None);
    };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    if let Some(c) = condition("Progressing")
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Rollout::Failed(
            c.message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".to_owned()),
        );
    }
    let why = condition("ReplicaFailure")
        .filter(|c| c.status == "True")
        .or_else(|| condition("Available").filter(|c| c.status == "False"))
        .and_then(|c| c.message.clone());
    if status.observed_generation.unwrap_or(0) < generation {
        return Rollout::Progressing(Some("the new spec is not observed yet".to_owned()));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired || replicas > updated || available < updated {
        return Rollout::Progressing(why.or_else(|| {
            Some(format!(
                "{available} of {desired} replicas available, {updated} updated"
            ))
        }));
    }
    Rollout::Done {
        ready: u32::try_from(available).unwrap_or(0),
        desired: u32::try_from(desired).unwrap_or(0),
    }
}

/// The backend-neutral status of a rollout.
pub fn status(rollout: Rollout) -> InstallationStatus {
    match rollout {
        Rollout::Done { ready, desired } => InstallationStatus::Available { ready, desired },
        Rollout::Progressing(last_error) => InstallationStatus::Starting { last_error },
        Rollout::Failed(why) => InstallationStatus::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).expect("a Deployment")
    }

    #[test]
    fn judges_rollouts() {
        let base = |status: serde_json::Value| {
            deployment(json!({
                "metadata": {"name": "a", "generation": 2},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": status,
            }))
        };
        assert_eq!(
            rollout(&base(
                json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1})
            )),
            Rollout::Done {
                ready: 1,
                desired: 1
            }
        );
        // An old generation, an old replica still running, nothing available yet.
        for status in [
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}),
            json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}),
        ] {
            assert!(matches!(rollout(&base(status)), Rollout::Progressing(_)));
        }
        let stuck = base(json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": "ReplicaSet \"a-1\" has timed out progressing."}]}));
        assert_eq!(
            rollout(&stuck),
            Rollout::Failed("ReplicaSet \"a-1\" has timed out progressing.".to_owned())
        );
        let no_status = deployment(json!({"metadata": {"name": "a"}}));
        assert_eq!(rollout(&no_status), Rollout::Progressing(None));
    }
}
