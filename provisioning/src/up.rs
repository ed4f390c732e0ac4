//! `e4k up`: the seed flow end to end, skipping what is already done.
//!
//! 1. **pki**: a root and intermediate CA (`certs init`) unless one exists.
//! 2. **certs**: a client certificate for every spec client that authenticates by subject name
//!    (the bridge's and the commander's in the seed), unless it exists.
//! 3. **eventgrid**: plan and apply the spec (a rerun writes nothing).
//! 4. **bridge-config**: the bridge YAML with the namespace's MQTT hostname as the remote
//!    endpoint.
//! 5. **secret files**: the bridge's certificate laid out as a mounted secret
//!    (`<out>/secrets/<secret>/client_cert.pem …`), for `e4k bridge run --secrets-dir`.
//! 6. **k8s**: the Secret and the manifests, as files (or applied by the caller); when a
//!    `roleAssignments` entry has `bridgeClientId`, the bridge's ServiceAccount and pods are set
//!    up for AKS workload identity with that client id.
//!
//! Every file is written only when its content changes, so a second run reports every step
//! unchanged and leaves the files as they were.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;

use crate::{
    Error, Result,
    certs::{
        self, CertificateAuthority, InitOptions, KeyFormat, KeyProtection, KeyType, LeafOutput,
        LeafSpec, NotAfter, Password, PkiLayout, Profile, files::PlannedFile,
    },
    eventgrid::{
        apply::{self as eg, ApplyOptions},
        arm::ArmClient,
        load, model, plan,
        spec::ValidationScheme,
        validate::{BridgeSessions, ValidateOptions},
    },
    k8s::{
        manifests::{self, ManifestInput},
        secret::{self, SecretFiles},
    },
};

/// What `up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The Event Grid spec.
    pub spec: PathBuf,
    /// The bridge configuration to complete.
    pub bridge_config: PathBuf,
    /// The secret the bridge configuration names (`clientK8sSecret`).
    pub bridge_secret: String,
    /// The spec client the bridge authenticates as (its certificate goes into the secret).
    pub bridge_client: String,
    /// The PKI directory.
    pub pki: PathBuf,
    /// Where generated files go.
    pub out: PathBuf,
    /// How new CA keys are protected.
    pub ca_protection: KeyProtection,
    /// The password of an existing CA key.
    pub ca_password: Option<Password>,
    /// The name for a new PKI.
    pub pki_name: String,
    /// Validity of new client certificates.
    pub client_validity: NotAfter,
    /// The manifests to render (its `bridge_yaml` is filled in).
    pub manifests: ManifestInput,
    /// ARM writes in flight.
    pub concurrency: usize,
    /// The sessions the bridge opens toward Event Grid, checked against the namespace's
    /// `maxClientSessionsPerAuthenticationName` before anything is applied.
    pub bridge_sessions: Option<BridgeSessions>,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made now.
    Created,
    /// Changed now.
    Updated,
    /// Already as wanted.
    Unchanged,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `pki`, `cert`, `eventgrid`, `file`.
    pub step: String,
    /// What it concerns (a path, a client, the namespace).
    pub target: String,
    /// What happened.
    pub status: Status,
    /// A detail (e.g. the plan summary).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The result of [`up`].
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// The namespace's MQTT hostname.
    pub hostname: Option<String>,
    /// ARM writes made.
    pub arm_writes: u64,
    /// The completed bridge configuration.
    pub bridge_config: PathBuf,
    /// The secrets directory for `e4k bridge run --secrets-dir`.
    pub secrets_dir: PathBuf,
    /// The Secret manifest.
    pub secret_manifest: PathBuf,
    /// The bridge manifests.
    pub manifests: PathBuf,
}

/// Runs the flow. `progress` is told of each step as it completes.
///
/// # Errors
/// The first failing step's error; the steps before it stay done.
pub async fn up(
    options: &UpOptions,
    arm: &Arc<ArmClient>,
    progress: &(dyn Fn(&Step) + Sync),
) -> Result<UpReport> {
    let mut steps = Vec::new();
    let mut record = |step: Step| {
        progress(&step);
        steps.push(step);
    };

    // 1. PKI
    let layout = PkiLayout::new(&options.pki);
    if layout.intermediate_cert.exists() {
        record(step("pki", &options.pki, Status::Unchanged, ""));
    } else {
        certs::init(&InitOptions {
            dir: options.pki.clone(),
            name: options.pki_name.clone(),
            key_type: KeyType::EcP256,
            root_not_after: NotAfter::parse("10y")?,
            intermediate_not_after: NotAfter::parse("10y")?,
            protection: options.ca_protection.clone(),
            force: false,
        })?;
        record(step("pki", &options.pki, Status::Created, ""));
    }

    // 2. Client certificates for the spec's subject-name clients.
    let password = options
        .ca_password
        .clone()
        .or(match &options.ca_protection {
            KeyProtection::Encrypted(p) => Some(p.clone()),
            KeyProtection::Plaintext => None,
        });
    // The spec is checked before anything else is made (the CA files exist by now).
    let checks = ValidateOptions {
        bridge: options.bridge_sessions.clone(),
    };
    let (spec, _) = load::check(&options.spec, &checks)?.into_valid(&options.spec)?;
    let spec_dir = load::spec_dir(&options.spec);
    let certs_dir = options.out.join("certs");
    let mut ca: Option<CertificateAuthority> = None;
    for client in spec
        .clients
        .iter()
        .filter(|c| c.validation_scheme == ValidationScheme::SubjectMatchesAuthenticationName)
    {
        let name = client.authentication_name();
        let output = client_files(&certs_dir, name);
        if output.cert.exists() && output.key.exists() {
            record(step("cert", &output.cert, Status::Unchanged, name));
            continue;
        }
        if ca.is_none() {
            ca = Some(CertificateAuthority::load(
                &layout.intermediate_cert,
                &layout.intermediate_key,
                password.as_ref(),
                "E4K_PASSWORD",
            )?);
        }
        if let Some(ca) = &ca {
            let leaf = LeafSpec {
                name: name.to_owned(),
                sans: Vec::new(),
                profile: Profile::Client,
                key_type: KeyType::EcP256,
                not_after: options.client_validity,
                key_format: KeyFormat::Pkcs8,
                // The bridge's key goes into a Kubernetes secret: it must be unencrypted.
                protection: KeyProtection::Plaintext,
            };
            ca.issue_to_files(&[(leaf, output.clone())], true, &|| {})?;
        }
        record(step("cert", &output.cert, Status::Created, name));
    }

    // 3. Event Grid.
    let desired = model::desired(&spec, spec_dir, &options.spec)?;
    let current = eg::read_current(arm, &desired).await?;
    let the_plan = plan::plan(&desired, &current, false, &options.spec)?;
    let writes_before = arm.stats().writes;
    let applied = eg::apply(
        arm,
        &desired,
        &the_plan,
        &ApplyOptions {
            concurrency: options.concurrency,
        },
        &|_| {},
    )
    .await?;
    let s = the_plan.summary;
    let status = match (s.create, s.changes()) {
        (_, 0) => Status::Unchanged,
        (c, n) if c == n => Status::Created,
        _ => Status::Updated,
    };
    record(step(
        "eventgrid",
        Path::new(&desired.namespace_id),
        status,
        &format!(
            "{} created, {} updated, {} replaced, {} unchanged",
            s.create, s.update, s.replace, s.no_op
        ),
    ));
    let hostname = applied.hostname.clone();

    // 4. The bridge configuration, pointed at the namespace.
    let bridge_text =
        std::fs::read_to_string(&options.bridge_config).map_err(|source| Error::Read {
            path: options.bridge_config.clone(),
            source,
        })?;
    let bridge_text = match &hostname {
        Some(host) => {
            // Event Grid serves MQTT on 8883 and MQTT over WebSockets on 443.
            let port = if remote_uses_websocket(&bridge_text) {
                443
            } else {
                8883
            };
            with_remote_endpoint(&bridge_text, &format!("{host}:{port}")).ok_or_else(|| {
                Error::bad_file(
                    &options.bridge_config,
                    "no remoteBrokerConnection.endpoint line to fill in",
                )
            })?
        }
        None => bridge_text,
    };
    let bridge_out = options.out.join("bridge.yaml");
    record(write_step(&bridge_out, bridge_text.as_bytes(), false)?);

    // 5. The bridge's certificate as a mounted secret.
    let bridge_files = client_files(&certs_dir, &options.bridge_client);
    let secrets_dir = options.out.join("secrets");
    let secret_dir = secrets_dir.join(&options.bridge_secret);
    // The key first: the directory it creates is private (0700).
    for (name, source, secret) in [
        (secret::KEY_KEY, &bridge_files.key, true),
        (secret::CERT_KEY, &bridge_files.cert, false),
        (secret::INTERMEDIATE_KEY, &layout.intermediate_cert, false),
    ] {
        let bytes = std::fs::read(source).map_err(|e| Error::Read {
            path: source.clone(),
            source: e,
        })?;
        record(write_step(&secret_dir.join(name), &bytes, secret)?);
    }

    // 6. Kubernetes objects.
    let rendered = secret::render_secret(
        &options.bridge_secret,
        options.manifests.namespace.as_deref(),
        &SecretFiles {
            cert: bridge_files.cert.clone(),
            key: bridge_files.key.clone(),
            intermediate: Some(layout.intermediate_cert.clone()),
        },
    )?;
    let secret_manifest = options.out.join("k8s").join("secret.yaml");
    record(write_step(
        &secret_manifest,
        rendered.yaml.as_bytes(),
        true,
    )?);
    let mut input = options.manifests.clone();
    input.bridge_yaml = bridge_text;
    // A spec entry with `bridgeClientId` runs the bridge as that managed identity.
    if input.workload_identity_client_id.is_none() {
        input.workload_identity_client_id =
            crate::eventgrid::rbac::bridge_client_id(&spec).map(str::to_owned);
    }
    let manifests_text = manifests::render(&input, e4k_templates::K8S_BRIDGE_YAML)?;
    let manifests_path = options.out.join("k8s").join("bridge.yaml");
    record(write_step(
        &manifests_path,
        manifests_text.as_bytes(),
        false,
    )?);

    Ok(UpReport {
        steps,
        hostname,
        arm_writes: arm.stats().writes - writes_before,
        bridge_config: bridge_out,
        secrets_dir,
        secret_manifest,
        manifests: manifests_path,
    })
}

fn client_files(dir: &Path, name: &str) -> LeafOutput {
    LeafOutput {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
        bundle: false,
    }
}

fn step(kind: &str, target: &Path, status: Status, detail: &str) -> Step {
    Step {
        step: kind.to_owned(),
        target: target.display().to_string(),
        status,
        detail: detail.to_owned(),
    }
}

/// Writes a file only when its content differs.
fn write_step(path: &Path, contents: &[u8], secret: bool) -> Result<Step> {
    let status = match std::fs::read(path) {
        Ok(existing) if existing == contents => {
            return Ok(step("file", path, Status::Unchanged, ""));
        }
        Ok(_) => Status::Updated,
        Err(_) => Status::Created,
    };
    certs::files::write_all(&[PlannedFile::new(path.to_owned(), contents, secret)], true)?;
    Ok(step("file", path, status, ""))
}

/// Whether a `remoteBrokerConnection:` block says `protocol: webSocket` (v1beta1).
fn remote_uses_websocket(yaml: &str) -> bool {
    let mut in_remote: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.starts_with("remoteBrokerConnection:") {
            in_remote = Some(indent);
            continue;
        }
        let Some(block) = in_remote else { continue };
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent <= block {
            in_remote = None;
        } else if let Some(value) = trimmed.strip_prefix("protocol:") {
            let value = value
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            return value == "webSocket";
        }
    }
    false
}

/// Replaces the value of `endpoint:` inside `remoteBrokerConnection:` (the first one after
/// it), keeping the rest of the text, comments and formatting as they are.
#[must_use]
pub fn with_remote_endpoint(yaml: &str, endpoint: &str) -> Option<String> {
    let mut out = String::with_capacity(yaml.len() + endpoint.len());
    let mut in_remote: Option<usize> = None;
    let mut replaced = false;
    for line in yaml.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.starts_with("remoteBrokerConnection:") {
            in_remote = Some(indent);
        } else if let Some(block) = in_remote
            && !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && indent <= block
        {
            in_remote = None;
        }
        if !replaced && in_remote.is_some() && trimmed.starts_with("endpoint:") {
            let ending = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!(
                "{}endpoint: \"{endpoint}\"{ending}",
                &line[..indent]
            ));
            replaced = true;
            continue;
        }
        out.push_str(line);
    }
    replaced.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_remote_endpoint_only() {
        let yaml = "spec:\n  localBrokerConnection:\n    endpoint: local:1883\n  remoteBrokerConnection:\n    # the namespace\n    endpoint: \"example:8883\"\n    tls:\n      tlsEnabled: true\n";
        let out =
            with_remote_endpoint(yaml, "ns.westeurope-1.ts.eventgrid.azure.net:8883").unwrap();
        assert_eq!(
            out,
            "spec:\n  localBrokerConnection:\n    endpoint: local:1883\n  remoteBrokerConnection:\n    # the namespace\n    endpoint: \"ns.westeurope-1.ts.eventgrid.azure.net:8883\"\n    tls:\n      tlsEnabled: true\n"
        );
        assert!(with_remote_endpoint("spec:\n  x: 1\n", "h:1").is_none());
    }

    #[test]
    fn a_websocket_remote_is_recognised() {
        let remote = |protocol: &str| {
            format!(
                "spec:\n  localBrokerConnection:\n    protocol: webSocket\n  \
                 remoteBrokerConnection:\n    endpoint: x:1\n{protocol}  bridgeInstances: 1\n"
            )
        };
        assert!(remote_uses_websocket(&remote(
            "    protocol: \"webSocket\" # 443\n"
        )));
        assert!(!remote_uses_websocket(&remote("    protocol: mqtt\n")));
        assert!(!remote_uses_websocket(&remote("")));
    }
}
