//! Access tokens for ARM: which [`TokenCredential`] the CLI hands to the
//! [`ArmClient`](super::arm::ArmClient).
//!
//! [`build`] turns a [`CredentialChoice`] and an environment (a lookup function, so tests can use
//! a fake one) into an `Arc<dyn TokenCredential>`:
//!
//! | choice | credential | needs |
//! |---|---|---|
//! | [`Auto`](CredentialChoice::Auto) | the first that fits, see below | |
//! | [`AzureCli`](CredentialChoice::AzureCli) | `azure_identity::AzureCliCredential` | `az login` |
//! | [`DeveloperTools`](CredentialChoice::DeveloperTools) | `azure_identity::DeveloperToolsCredential` (az, then azd) | `az login` or `azd auth login` |
//! | [`ServicePrincipal`](CredentialChoice::ServicePrincipal) | `azure_identity::ClientSecretCredential`, or with a certificate a client assertion ([`assertion`](super::assertion)) | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET` or `AZURE_CLIENT_CERTIFICATE_PATH` (PEM: certificate + RSA key) |
//! | [`WorkloadIdentity`](CredentialChoice::WorkloadIdentity) | `azure_identity::WorkloadIdentityCredential` | `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` |
//! | [`ManagedIdentity`](CredentialChoice::ManagedIdentity) | `azure_identity::ManagedIdentityCredential` | an Azure host (VM, App Service) |
//! | [`StaticTokenEnv`](CredentialChoice::StaticTokenEnv) | [`StaticToken`] | the variable holding the token |
//!
//! [`Auto`](CredentialChoice::Auto) looks at the environment in this order and takes the first
//! match:
//! 1. [`STATIC_TOKEN_VAR`] (`E4K_ARM_TOKEN`) is set → [`StaticToken`] (the emulator, or a token
//!    from `az account get-access-token`);
//! 2. `AZURE_FEDERATED_TOKEN_FILE` is set → workload identity (a Kubernetes pod);
//! 3. `AZURE_CLIENT_CERTIFICATE_PATH` is set → service principal with a certificate;
//! 4. `AZURE_CLIENT_SECRET` is set → service principal;
//! 5. otherwise → developer tools (Azure CLI, then Azure Developer CLI).
//!
//! Managed identity is never picked automatically (probing the instance metadata endpoint off
//! Azure is slow): choose it explicitly. Certificate credentials are signed client assertions
//! built without OpenSSL (azure_identity's own needs its `client_certificate` feature and
//! OpenSSL); `AZURE_AUTHORITY_HOST` sets the authority for sovereign clouds.
//!
//! Empty variables count as missing everywhere.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_identity::{
    AzureCliCredential, ClientSecretCredential, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Error, Result};

/// The variable [`CredentialChoice::Auto`] reads a static bearer token from, when it is set.
pub const STATIC_TOKEN_VAR: &str = "E4K_ARM_TOKEN";

const TENANT_ID: &str = "AZURE_TENANT_ID";
const CLIENT_ID: &str = "AZURE_CLIENT_ID";
const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
const AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// The expiry reported for a [`StaticToken`]: far enough away that no cache ever refreshes it.
const STATIC_TOKEN_EXPIRY: OffsetDateTime = datetime!(9999-01-01 0:00 UTC);

/// A bearer token given as a string, e.g. for the emulator (which accepts any token, or the one
/// it was configured with) or a token obtained with `az account get-access-token`.
///
/// It reports an expiry far in the future for every scope; `Debug` does not show it.
#[derive(Clone)]
pub struct StaticToken {
    token: SecretString,
}

impl StaticToken {
    /// Wraps `token` (used as given, without trimming).
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: SecretString::from(token.into()),
        }
    }

    /// Reads the token from the variable `var` of `env`; surrounding whitespace (a trailing
    /// newline from `$(cat file)`) is removed.
    ///
    /// # Errors
    /// [`Error::Credential`] when the variable is missing or blank.
    pub fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let token = lookup(env, var).ok_or_else(|| Error::Credential {
            reason: format!(
                "the token variable {var} is not set or is empty: export the bearer token in it"
            ),
        })?;
        Ok(Self::new(token.trim()))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.token.expose_secret().to_owned(),
            STATIC_TOKEN_EXPIRY,
        ))
    }
}

/// How to obtain ARM access tokens; see the [module documentation](self) for what each needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialChoice {
    /// Pick from the environment: [`STATIC_TOKEN_VAR`], then workload identity, then service
    /// principal, then developer tools.
    #[default]
    Auto,
    /// The Azure CLI only (`az account get-access-token`).
    AzureCli,
    /// The Azure CLI, then the Azure Developer CLI.
    DeveloperTools,
    /// A service principal with a client secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`).
    ServicePrincipal,
    /// Entra workload identity on Kubernetes (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`, as injected by the workload identity webhook).
    WorkloadIdentity,
    /// The managed identity of the Azure host; system-assigned unless a user-assigned
    /// identity's client id is given.
    ManagedIdentity {
        /// The client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// A static bearer token read from the named variable (`--token-env VAR`).
    StaticTokenEnv(String),
}

/// The process environment as [`build`] expects it: a variable's value, `None` when unset, empty
/// or not UTF-8.
#[must_use]
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Builds the credential for `choice`, reading variables through `env` (pass [`process_env`]).
///
/// Nothing is requested from Entra ID here: the first token is fetched by the first ARM call.
///
/// # Errors
/// [`Error::Credential`] naming the missing variables (and what to do), or azure_identity's
/// reason when it refuses the values (an invalid tenant id, an unreadable token file).
pub fn build(
    choice: &CredentialChoice,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenCredential>> {
    let source = resolve(choice, env)?;
    tracing::debug!(credential = source.name(), "ARM credential chosen");
    source.into_credential()
}

/// What [`resolve`] settled on, with the values read from the environment.
enum Source {
    Static(StaticToken),
    Workload {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    ServicePrincipal {
        tenant_id: String,
        client_id: String,
        secret: SecretString,
    },
    ServicePrincipalCertificate {
        tenant_id: String,
        client_id: String,
        certificate: PathBuf,
        authority: String,
    },
    AzureCli,
    DeveloperTools,
    Managed {
        client_id: Option<String>,
    },
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Self::Static(_) => "static token",
            Self::Workload { .. } => "workload identity",
            Self::ServicePrincipal { .. } => "service principal",
            Self::ServicePrincipalCertificate { .. } => "service principal certificate",
            Self::AzureCli => "azure cli",
            Self::DeveloperTools => "developer tools",
            Self::Managed { .. } => "managed identity",
        }
    }

    fn into_credential(self) -> Result<Arc<dyn TokenCredential>> {
        let name = self.name();
        let refused = |e: azure_core::Error| Error::Credential {
            reason: format!("{name}: {}", chain(&e)),
        };
        Ok(match self {
            Self::Static(token) => Arc::new(token),
            Self::Workload {
                tenant_id,
                client_id,
                token_file,
            } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                client_id: Some(client_id),
                tenant_id: Some(tenant_id),
                token_file_path: Some(token_file),
                ..WorkloadIdentityCredentialOptions::default()
            }))
            .map_err(refused)?,
            Self::ServicePrincipal {
                tenant_id,
                client_id,
                secret,
            } => ClientSecretCredential::new(
                &tenant_id,
                client_id,
                Secret::new(secret.expose_secret().to_owned()),
                None,
            )
            .map_err(refused)?,
            Self::ServicePrincipalCertificate {
                tenant_id,
                client_id,
                certificate,
                authority,
            } => super::assertion::certificate_credential(
                &certificate,
                &tenant_id,
                &client_id,
                &authority,
            )?,
            Self::AzureCli => AzureCliCredential::new(None).map_err(refused)?,
            Self::DeveloperTools => DeveloperToolsCredential::new(None).map_err(refused)?,
            Self::Managed { client_id } => {
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.map(UserAssignedId::ClientId),
                    ..ManagedIdentityCredentialOptions::default()
                }))
                .map_err(refused)?
            }
        })
    }
}

/// Decides which credential `choice` means in `env`, without building it.
fn resolve(choice: &CredentialChoice, env: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
    match choice {
        CredentialChoice::Auto => {
            if lookup(env, STATIC_TOKEN_VAR).is_some() {
                StaticToken::from_env(STATIC_TOKEN_VAR, env).map(Source::Static)
            } else if lookup(env, FEDERATED_TOKEN_FILE).is_some() {
                workload(env)
            } else if lookup(env, CLIENT_CERTIFICATE_PATH).is_some() {
                service_principal_certificate(env)
            } else if lookup(env, CLIENT_SECRET).is_some() {
                service_principal(env)
            } else {
                Ok(Source::DeveloperTools)
            }
        }
        CredentialChoice::AzureCli => Ok(Source::AzureCli),
        CredentialChoice::DeveloperTools => Ok(Source::DeveloperTools),
        CredentialChoice::ServicePrincipal => {
            if lookup(env, CLIENT_CERTIFICATE_PATH).is_some()
                && lookup(env, CLIENT_SECRET).is_none()
            {
                service_principal_certificate(env)
            } else {
                service_principal(env)
            }
        }
        CredentialChoice::WorkloadIdentity => workload(env),
        CredentialChoice::ManagedIdentity { client_id } => Ok(Source::Managed {
            client_id: client_id.clone().filter(|id| !id.trim().is_empty()),
        }),
        CredentialChoice::StaticTokenEnv(var) => {
            StaticToken::from_env(var, env).map(Source::Static)
        }
    }
}

fn workload(env: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
    let [tenant_id, client_id, token_file] = required(
        env,
        "workload identity",
        [TENANT_ID, CLIENT_ID, FEDERATED_TOKEN_FILE],
        "label the pod and its service account for Entra workload identity, or choose another credential",
    )?;
    Ok(Source::Workload {
        tenant_id,
        client_id,
        token_file: PathBuf::from(token_file),
    })
}

fn service_principal(env: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
    let [tenant_id, client_id, secret] = required(
        env,
        "service principal",
        [TENANT_ID, CLIENT_ID, CLIENT_SECRET],
        "set them (`az ad sp create-for-rbac` prints them), or choose another credential",
    )?;
    Ok(Source::ServicePrincipal {
        tenant_id,
        client_id,
        secret: SecretString::from(secret),
    })
}

fn service_principal_certificate(env: &dyn Fn(&str) -> Option<String>) -> Result<Source> {
    let [tenant_id, client_id, certificate] = required(
        env,
        "service principal certificate",
        [TENANT_ID, CLIENT_ID, CLIENT_CERTIFICATE_PATH],
        "set them (AZURE_CLIENT_CERTIFICATE_PATH: a PEM file with the certificate and its RSA key)",
    )?;
    Ok(Source::ServicePrincipalCertificate {
        tenant_id,
        client_id,
        certificate: PathBuf::from(certificate),
        authority: lookup(env, AUTHORITY_HOST)
            .unwrap_or_else(|| super::assertion::DEFAULT_AUTHORITY.to_owned()),
    })
}

/// The values of `vars`, or an error naming every missing one.
fn required<const N: usize>(
    env: &dyn Fn(&str) -> Option<String>,
    what: &str,
    vars: [&str; N],
    hint: &str,
) -> Result<[String; N]> {
    let values = vars.map(|var| lookup(env, var));
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, value)| value.is_none())
        .map(|(var, _)| *var)
        .collect();
    if !missing.is_empty() {
        return Err(Error::Credential {
            reason: format!(
                "{what} needs {}; not set: {}: {hint}",
                vars.join(", "),
                missing.join(", ")
            ),
        });
    }
    Ok(values.map(Option::unwrap_or_default))
}

/// A variable's value, with blank values treated as missing.
fn lookup(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    env(var).filter(|value| !value.trim().is_empty())
}

/// An error and its sources on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source in their own message; don't print it twice.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn fake(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolved(choice: &CredentialChoice, vars: &[(&str, &str)]) -> Result<&'static str> {
        resolve(choice, &fake(vars)).map(|source| source.name())
    }

    fn reason(result: Result<impl Sized>) -> String {
        match result {
            Err(Error::Credential { reason }) => reason,
            Err(other) => panic!("not a credential error: {other}"),
            Ok(_) => panic!("resolved"),
        }
    }

    const SP: [(&str, &str); 3] = [
        (TENANT_ID, "tenant-1"),
        (CLIENT_ID, "client-1"),
        (CLIENT_SECRET, "hunter2-secret"),
    ];

    #[test]
    fn a_certificate_path_selects_certificate_credentials() {
        let cert = [
            (TENANT_ID, "t"),
            (CLIENT_ID, "c"),
            (CLIENT_CERTIFICATE_PATH, "/sp.pem"),
        ];
        assert_eq!(
            resolved(&CredentialChoice::Auto, &cert).unwrap(),
            "service principal certificate"
        );
        assert_eq!(
            resolved(&CredentialChoice::ServicePrincipal, &cert).unwrap(),
            "service principal certificate"
        );
        let reason = reason(resolve(
            &CredentialChoice::Auto,
            &fake(&[(CLIENT_CERTIFICATE_PATH, "/x")]),
        ));
        assert!(
            reason.contains("AZURE_TENANT_ID") && reason.contains("AZURE_CLIENT_ID"),
            "{reason}"
        );
    }

    #[test]
    fn auto_follows_the_documented_order() {
        let auto = CredentialChoice::Auto;
        assert_eq!(resolved(&auto, &[]).unwrap(), "developer tools");
        assert_eq!(resolved(&auto, &SP).unwrap(), "service principal");
        let workload = [
            (TENANT_ID, "t"),
            (CLIENT_ID, "c"),
            (FEDERATED_TOKEN_FILE, "/var/run/token"),
            (CLIENT_SECRET, "s"),
        ];
        assert_eq!(resolved(&auto, &workload).unwrap(), "workload identity");
        let with_static = [(STATIC_TOKEN_VAR, "tok"), (FEDERATED_TOKEN_FILE, "/f")];
        assert_eq!(resolved(&auto, &with_static).unwrap(), "static token");
        // Blank values are missing values.
        let blank = [(STATIC_TOKEN_VAR, "  "), (CLIENT_SECRET, "")];
        assert_eq!(resolved(&auto, &blank).unwrap(), "developer tools");
    }

    #[test]
    fn auto_reports_what_an_incomplete_environment_lacks() {
        let text = reason(resolved(&CredentialChoice::Auto, &[(CLIENT_SECRET, "s")]));
        assert!(text.contains("service principal"), "{text}");
        assert!(
            text.contains("not set: AZURE_TENANT_ID, AZURE_CLIENT_ID"),
            "{text}"
        );
        assert!(!text.contains("AZURE_CLIENT_SECRET,"), "{text}");
    }

    #[test]
    fn explicit_choices_name_missing_variables() {
        let text = reason(resolved(&CredentialChoice::WorkloadIdentity, &SP));
        assert!(
            text.contains("not set: AZURE_FEDERATED_TOKEN_FILE"),
            "{text}"
        );
        let text = reason(resolved(&CredentialChoice::ServicePrincipal, &[]));
        assert!(
            text.contains("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"),
            "{text}"
        );
        assert!(text.contains("az ad sp create-for-rbac"), "{text}");
        let text = reason(resolved(
            &CredentialChoice::StaticTokenEnv("MY_TOKEN".into()),
            &[],
        ));
        assert!(text.contains("MY_TOKEN"), "{text}");
    }

    #[test]
    fn explicit_choices_ignore_other_variables() {
        let env = [(STATIC_TOKEN_VAR, "tok"), (CLIENT_SECRET, "s")];
        assert_eq!(
            resolved(&CredentialChoice::AzureCli, &env).unwrap(),
            "azure cli"
        );
        assert_eq!(
            resolved(&CredentialChoice::DeveloperTools, &env).unwrap(),
            "developer tools"
        );
        let managed = CredentialChoice::ManagedIdentity { client_id: None };
        assert_eq!(resolved(&managed, &env).unwrap(), "managed identity");
    }

    #[tokio::test]
    async fn static_token_from_env_is_trimmed_and_hidden() {
        let env = fake(&[("TOKEN_VAR", "s3cr3t-token\n")]);
        let credential =
            build(&CredentialChoice::StaticTokenEnv("TOKEN_VAR".into()), &env).unwrap();
        let debug = format!("{credential:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(debug, "StaticToken { .. }");
        let token = credential
            .get_token(&["https://management.azure.com/.default"], None)
            .await
            .unwrap();
        assert_eq!(token.token.secret(), "s3cr3t-token");
        assert!(token.expires_on > OffsetDateTime::now_utc() + time::Duration::days(3650));
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    #[test]
    fn built_credentials_do_not_show_secrets() {
        let credential = build(&CredentialChoice::ServicePrincipal, &fake(&SP)).unwrap();
        let debug = format!("{credential:?}");
        assert!(debug.contains("ClientSecretCredential"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let source = resolve(&CredentialChoice::ServicePrincipal, &fake(&SP)).unwrap();
        assert!(matches!(source, Source::ServicePrincipal { .. }));
    }

    #[test]
    fn workload_identity_reads_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "federated-jwt").unwrap();
        let file = file.to_string_lossy().into_owned();
        let env = [
            (TENANT_ID, "tenant-1"),
            (CLIENT_ID, "client-1"),
            (FEDERATED_TOKEN_FILE, file.as_str()),
        ];
        let credential = build(&CredentialChoice::Auto, &fake(&env)).unwrap();
        let debug = format!("{credential:?}");
        assert!(debug.contains("WorkloadIdentityCredential"), "{debug}");
        assert!(!debug.contains("federated-jwt"), "{debug}");

        let missing = dir.path().join("absent").to_string_lossy().into_owned();
        let env = [
            (TENANT_ID, "tenant-1"),
            (CLIENT_ID, "client-1"),
            (FEDERATED_TOKEN_FILE, missing.as_str()),
        ];
        let text = reason(build(&CredentialChoice::WorkloadIdentity, &fake(&env)));
        assert!(text.starts_with("workload identity: "), "{text}");
    }

    #[test]
    fn invalid_tenant_is_a_credential_error() {
        let env = [
            (TENANT_ID, "not a tenant!"),
            (CLIENT_ID, "c"),
            (CLIENT_SECRET, "s"),
        ];
        let text = reason(build(&CredentialChoice::ServicePrincipal, &fake(&env)));
        assert!(text.starts_with("service principal: "), "{text}");
        assert!(!text.contains("\"s\""), "{text}");
    }
}
