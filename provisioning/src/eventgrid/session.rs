//! How e4k reaches ARM, as the command line gives it: [`ArmOptions`] (endpoint, credential
//! name or token variable, retries, poll interval) and [`ArmOptions::client`], which picks the
//! [`CredentialChoice`] ([`credential_choice`]), builds the credential and the [`ArmClient`].

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::arm::{ArmClient, ArmConfig};
use super::credential::{self, CredentialChoice};
use crate::{Error, Result};

/// The ARM flags of `e4k eventgrid plan/setup/destroy/show` and `e4k up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmOptions {
    /// `--endpoint`: the ARM endpoint URL.
    pub endpoint: String,
    /// `--credential`: `auto`, `azure-cli`, `developer-tools`, `service-principal`,
    /// `workload-identity` or `managed-identity`.
    pub credential: String,
    /// `--token-env`: use the bearer token in this variable instead.
    pub token_env: Option<String>,
    /// `--max-attempts` per ARM call.
    pub max_attempts: u32,
    /// `--min-poll-interval-ms`: the shortest wait between polls of an operation.
    pub min_poll_interval_ms: u64,
}

/// The [`CredentialChoice`] of `--token-env` (when given) or `--credential name`, reading the
/// variables it needs (`AZURE_CLIENT_ID` for `managed-identity`) through `env`.
///
/// ```
/// use e4k_provisioning::eventgrid::{credential::CredentialChoice, session::credential_choice};
///
/// assert_eq!(credential_choice(None, "azure-cli", &|_| None)?, CredentialChoice::AzureCli);
/// assert!(credential_choice(None, "nope", &|_| None).is_err());
/// # Ok::<(), e4k_provisioning::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidOption`] for an unknown name.
pub fn credential_choice(
    token_env: Option<&str>,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CredentialChoice> {
    Ok(match (token_env, name) {
        (Some(var), _) => CredentialChoice::StaticTokenEnv(var.to_owned()),
        (None, "auto") => CredentialChoice::Auto,
        (None, "azure-cli") => CredentialChoice::AzureCli,
        (None, "developer-tools") => CredentialChoice::DeveloperTools,
        (None, "service-principal") => CredentialChoice::ServicePrincipal,
        (None, "workload-identity") => CredentialChoice::WorkloadIdentity,
        (None, "managed-identity") => CredentialChoice::ManagedIdentity {
            client_id: env("AZURE_CLIENT_ID"),
        },
        (None, other) => {
            return Err(Error::InvalidOption {
                option: format!("--credential {other:?}"),
                reason: "expected auto, azure-cli, developer-tools, service-principal, \
                         workload-identity or managed-identity"
                    .to_owned(),
            });
        }
    })
}

impl ArmOptions {
    /// The ARM client configuration: the endpoint, the attempts, and polls no more often than
    /// the minimum interval (and at most once a second unless the minimum is higher).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] when the endpoint is not a URL.
    pub fn config(&self) -> Result<ArmConfig> {
        let endpoint = url::Url::parse(&self.endpoint).map_err(|e| Error::InvalidOption {
            option: format!("--endpoint {:?}", self.endpoint),
            reason: e.to_string(),
        })?;
        Ok(ArmConfig {
            endpoint,
            max_attempts: self.max_attempts,
            min_poll_interval: Duration::from_millis(self.min_poll_interval_ms),
            poll_interval: Duration::from_millis(self.min_poll_interval_ms.max(1000)),
            ..ArmConfig::default()
        })
    }

    /// The ARM client: the credential these options choose (variables read through `env`;
    /// pass [`credential::process_env`]) and [`ArmOptions::config`].
    ///
    /// # Errors
    /// [`Error::InvalidOption`] for an unknown credential or a bad endpoint; the errors of
    /// [`credential::build`] and [`ArmClient::new`].
    pub fn client(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        cancel: CancellationToken,
    ) -> Result<Arc<ArmClient>> {
        let choice = credential_choice(self.token_env.as_deref(), &self.credential, env)?;
        let credential = credential::build(&choice, env)?;
        let config = self.config()?;
        Ok(Arc::new(ArmClient::new(config, credential, cancel)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ArmOptions {
        ArmOptions {
            endpoint: "http://127.0.0.1:8890".into(),
            credential: "auto".into(),
            token_env: None,
            max_attempts: 3,
            min_poll_interval_ms: 50,
        }
    }

    #[test]
    fn token_env_wins_over_the_name() {
        let choice = credential_choice(Some("TOKEN"), "nope", &|_| None).expect("valid");
        assert_eq!(choice, CredentialChoice::StaticTokenEnv("TOKEN".into()));
        let choice =
            credential_choice(None, "managed-identity", &|_| Some("id".into())).expect("valid");
        assert_eq!(
            choice,
            CredentialChoice::ManagedIdentity {
                client_id: Some("id".into())
            }
        );
    }

    #[test]
    fn unknown_credential_is_a_usage_error() {
        let err = credential_choice(None, "nope", &|_| None).expect_err("unknown");
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "--credential \"nope\": expected auto, azure-cli, developer-tools, \
             service-principal, workload-identity or managed-identity"
        );
    }

    #[test]
    fn config_polls_at_least_every_second() {
        let config = options().config().expect("valid");
        assert_eq!(config.max_attempts, 3);
        assert_eq!(config.min_poll_interval, Duration::from_millis(50));
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        let bad = ArmOptions {
            endpoint: "not a url".into(),
            ..options()
        };
        let err = bad.config().expect_err("not a URL");
        assert!(err.is_usage());
        assert!(err.to_string().starts_with("--endpoint \"not a url\": "));
    }

    #[test]
    fn client_reads_the_token_variable() {
        let options = ArmOptions {
            token_env: Some("TOKEN".into()),
            ..options()
        };
        let env = |name: &str| (name == "TOKEN").then(|| "t".to_owned());
        options
            .client(&env, CancellationToken::new())
            .expect("a client for the emulator");
    }
}
