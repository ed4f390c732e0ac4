//! Server-side apply of rendered manifests to the cluster of the current kubeconfig.
//!
//! Each object is sent as `PATCH …?fieldManager=e4k&force=true` with
//! `Content-Type: application/apply-patch+yaml`: the API server merges it under the field
//! manager `e4k`, so a rerun changes nothing and fields other tools own are left alone.

use kube::{
    Client,
    api::{Api, DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde::Serialize;

use crate::{Error, Result};

/// The field manager e4k applies as.
pub const FIELD_MANAGER: &str = "e4k";

/// One object applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppliedObject {
    /// `Secret`, `StatefulSet`…
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The kinds e4k renders, with their plural and whether they are namespaced.
fn resource_for(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match (group, kind) {
        ("", "Secret") => "secrets",
        ("", "ConfigMap") => "configmaps",
        ("", "Service") => "services",
        ("", "ServiceAccount") => "serviceaccounts",
        ("apps", "StatefulSet") => "statefulsets",
        _ => return None,
    };
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// Connects to the cluster of the current kubeconfig (or the in-cluster service account).
///
/// # Errors
/// [`Error::Kubernetes`] when no configuration is found or it cannot be used.
pub async fn connect() -> Result<Client> {
    Client::try_default().await.map_err(|e| Error::Kubernetes {
        object: "the cluster".into(),
        status: None,
        message: format!("{e} (is KUBECONFIG set, and does `kubectl get ns` work?)"),
    })
}

/// Applies every document of a YAML stream. Objects without a namespace go to
/// `namespace`, or the client's default namespace.
///
/// # Errors
/// [`Error::Kubernetes`] for malformed documents, unsupported kinds and refused objects; the
/// objects before the failing one stay applied (rerunning is safe).
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    namespace: Option<&str>,
) -> Result<Vec<AppliedObject>> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| Error::Kubernetes {
            object: "manifests".into(),
            status: None,
            message: format!("not valid YAML: {e}"),
        })?;
    let mut applied = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let object: DynamicObject =
            serde_json::from_value(document).map_err(|e| Error::Kubernetes {
                object: "manifests".into(),
                status: None,
                message: format!("not a Kubernetes object: {e}"),
            })?;
        let types = object.types.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let label = format!("{} {name}", types.kind);
        let resource =
            resource_for(&types.api_version, &types.kind).ok_or_else(|| Error::Kubernetes {
                object: label.clone(),
                status: None,
                message: format!(
                    "e4k does not apply {}/{} objects",
                    types.api_version, types.kind
                ),
            })?;
        let ns = object
            .metadata
            .namespace
            .clone()
            .or_else(|| namespace.map(str::to_owned))
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| kube_error(&format!("{} {ns}/{name}", types.kind), e))?;
        tracing::info!(kind = %types.kind, namespace = %ns, name = %name, "applied");
        applied.push(AppliedObject {
            kind: types.kind,
            namespace: ns,
            name,
        });
    }
    Ok(applied)
}

fn kube_error(object: &str, error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) => Error::Kubernetes {
            object: object.to_owned(),
            status: Some(status.code),
            message: format!("{} ({})", status.message, status.reason),
        },
        other => Error::Kubernetes {
            object: object.to_owned(),
            status: None,
            message: other.to_string(),
        },
    }
}
