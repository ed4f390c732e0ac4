//! `e4k eventgrid emulator`'s flags as a library type: [`EmulatorOptions`] holds them as given
//! (milliseconds, variable names, optional overrides) and [`EmulatorConfig::from_options`]
//! checks them and builds the [`EmulatorConfig`], reading the named environment variables.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use e4k_provisioning::eventgrid::rbac::is_guid;

use crate::{EmulatorConfig, EmulatorError, FaultConfig, MqttConfig, PublishLimit};

/// The emulator's settings as the command line gives them; [`Default`] is the command's
/// defaults (`127.0.0.1:8890`, 200 ms operations, no faults, Event Grid's publish quota).
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatorOptions {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--state`: keep the state in this JSON file.
    pub state: Option<PathBuf>,
    /// `--latency-ms`.
    pub latency_ms: u64,
    /// `--lro-delay-ms`.
    pub lro_delay_ms: u64,
    /// `--fault-429`: fraction of calls answered 429.
    pub fault_429: f64,
    /// `--fault-5xx`: fraction of calls answered 5xx.
    pub fault_5xx: f64,
    /// `--seed` of the fault injection.
    pub seed: u64,
    /// `--token-env`: accept only the bearer token in this variable.
    pub token_env: Option<String>,
    /// `--mqtt-hostname`; with `mqtt_listen` the default is `localhost`.
    pub mqtt_hostname: Option<String>,
    /// `--mqtt-listen`: also serve the MQTT data plane here.
    pub mqtt_listen: Option<SocketAddr>,
    /// `--mqtt-ca-out`: where the data plane's CA certificate goes.
    pub mqtt_ca_out: Option<PathBuf>,
    /// `--mosquitto`: the broker binary behind the data plane.
    pub mosquitto: Option<PathBuf>,
    /// `--mqtt-websocket-listen`.
    pub mqtt_websocket_listen: Option<SocketAddr>,
    /// `--session-publish-rate`: PUBLISH packets per second per session; 0 lifts it.
    pub session_publish_rate: u32,
    /// `--session-publish-bytes`: bytes per second per session; 0 lifts it.
    pub session_publish_bytes: u32,
    /// `--identity-principal-id`: a GUID.
    pub identity_principal_id: Option<String>,
    /// `--identity-token-lifetime-secs`: at least 1.
    pub identity_token_lifetime_secs: Option<u64>,
    /// `--identity-header-env`: the variable holding the X-IDENTITY-HEADER secret.
    pub identity_header_env: Option<String>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8890)),
            state: None,
            latency_ms: 0,
            lro_delay_ms: 200,
            fault_429: 0.0,
            fault_5xx: 0.0,
            seed: 1,
            token_env: None,
            mqtt_hostname: None,
            mqtt_listen: None,
            mqtt_ca_out: None,
            mosquitto: None,
            mqtt_websocket_listen: None,
            session_publish_rate: PublishLimit::EVENT_GRID.messages_per_second,
            session_publish_bytes: PublishLimit::EVENT_GRID.bytes_per_second,
            identity_principal_id: None,
            identity_token_lifetime_secs: None,
            identity_header_env: None,
        }
    }
}

fn invalid(option: String, reason: &str) -> EmulatorError {
    EmulatorError::InvalidOption {
        option,
        reason: reason.to_owned(),
    }
}

impl EmulatorConfig {
    /// The configuration for `options`, reading the variables they name through `env` (pass
    /// `e4k_provisioning::eventgrid::credential::process_env`: unset or empty is `None`).
    ///
    /// ```
    /// use e4k_emulator::{EmulatorConfig, EmulatorOptions};
    ///
    /// let options = EmulatorOptions {
    ///     mqtt_listen: Some("127.0.0.1:0".parse()?),
    ///     ..EmulatorOptions::default()
    /// };
    /// let config = EmulatorConfig::from_options(&options, &|_| None)?;
    /// assert_eq!(config.mqtt_hostname, "localhost");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EmulatorError::InvalidOption`] naming the flag: a variable that is not set, a
    /// principal id that is not a GUID, a token lifetime of 0.
    pub fn from_options(
        options: &EmulatorOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, EmulatorError> {
        let token =
            match &options.token_env {
                Some(var) => Some(env(var).ok_or_else(|| {
                    invalid(format!("--token-env {var}"), "the variable is not set")
                })?),
                None => None,
            };
        let mut config = EmulatorConfig {
            listen: options.listen,
            state_file: options.state.clone(),
            latency: Duration::from_millis(options.latency_ms),
            lro_delay: Duration::from_millis(options.lro_delay_ms),
            faults: FaultConfig {
                rate_429: options.fault_429,
                rate_5xx: options.fault_5xx,
                seed: options.seed,
                ..FaultConfig::default()
            },
            token,
            ..EmulatorConfig::default()
        };
        if let Some(principal) = &options.identity_principal_id {
            if !is_guid(principal) {
                return Err(invalid(
                    format!("--identity-principal-id {principal:?}"),
                    "not a GUID",
                ));
            }
            config.identity.principal_id.clone_from(principal);
        }
        if let Some(secs) = options.identity_token_lifetime_secs {
            if secs == 0 {
                return Err(invalid(
                    "--identity-token-lifetime-secs".to_owned(),
                    "must be at least 1",
                ));
            }
            config.identity.token_lifetime = Duration::from_secs(secs);
        }
        if let Some(var) = &options.identity_header_env {
            config.identity.header_secret = env(var).ok_or_else(|| {
                invalid(
                    format!("--identity-header-env {var}"),
                    "the variable is not set",
                )
            })?;
        }
        if let Some(listen) = options.mqtt_listen {
            config.mqtt = Some(MqttConfig {
                listen,
                mosquitto_binary: options.mosquitto.clone(),
                ca_file: options.mqtt_ca_out.clone(),
                websocket_listen: options.mqtt_websocket_listen,
                session_publish_limit: (options.session_publish_rate > 0
                    || options.session_publish_bytes > 0)
                    .then_some(PublishLimit {
                        messages_per_second: options.session_publish_rate,
                        bytes_per_second: options.session_publish_bytes,
                    }),
                ..MqttConfig::default()
            });
            // A local data plane is reached as localhost unless told otherwise.
            config.mqtt_hostname = "localhost".into();
        }
        if let Some(hostname) = &options.mqtt_hostname {
            config.mqtt_hostname.clone_from(hostname);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MQTT_HOSTNAME;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn build(options: &EmulatorOptions) -> Result<EmulatorConfig, EmulatorError> {
        EmulatorConfig::from_options(options, &none)
    }

    #[test]
    fn defaults_serve_only_arm() {
        let config = build(&EmulatorOptions::default()).expect("the defaults are valid");
        assert_eq!(config.listen.port(), 8890);
        assert_eq!(config.lro_delay, Duration::from_millis(200));
        assert_eq!(config.mqtt, None);
        assert_eq!(config.mqtt_hostname, DEFAULT_MQTT_HOSTNAME);
        assert_eq!(config.token, None);
    }

    #[test]
    fn variables_are_read_through_env() {
        let options = EmulatorOptions {
            token_env: Some("TOKEN".into()),
            identity_header_env: Some("HEADER".into()),
            ..EmulatorOptions::default()
        };
        let env = |name: &str| Some(format!("value of {name}"));
        let config = EmulatorConfig::from_options(&options, &env).expect("valid");
        assert_eq!(config.token.as_deref(), Some("value of TOKEN"));
        assert_eq!(config.identity.header_secret, "value of HEADER");
        let err = build(&options).expect_err("TOKEN is not set");
        assert_eq!(
            err.to_string(),
            "--token-env TOKEN: the variable is not set"
        );
        assert!(err.is_usage());
    }

    #[test]
    fn identity_flags_are_checked() {
        let options = EmulatorOptions {
            identity_principal_id: Some("nope".into()),
            ..EmulatorOptions::default()
        };
        assert_eq!(
            build(&options).expect_err("not a GUID").to_string(),
            "--identity-principal-id \"nope\": not a GUID"
        );
        let options = EmulatorOptions {
            identity_token_lifetime_secs: Some(0),
            ..EmulatorOptions::default()
        };
        assert_eq!(
            build(&options).expect_err("0 s").to_string(),
            "--identity-token-lifetime-secs: must be at least 1"
        );
        let options = EmulatorOptions {
            identity_token_lifetime_secs: Some(5),
            identity_principal_id: Some("00000000-0000-0000-0000-000000000001".into()),
            ..EmulatorOptions::default()
        };
        let config = build(&options).expect("valid");
        assert_eq!(config.identity.token_lifetime, Duration::from_secs(5));
        assert_eq!(
            config.identity.principal_id,
            "00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn mqtt_listen_enables_the_data_plane() {
        let options = EmulatorOptions {
            mqtt_listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            session_publish_rate: 0,
            session_publish_bytes: 0,
            ..EmulatorOptions::default()
        };
        let config = build(&options).expect("valid");
        let mqtt = config.mqtt.expect("a data plane");
        assert_eq!(mqtt.session_publish_limit, None);
        assert_eq!(config.mqtt_hostname, "localhost");
        let options = EmulatorOptions {
            mqtt_hostname: Some("{namespace}.example".into()),
            ..options
        };
        assert_eq!(
            build(&options).expect("valid").mqtt_hostname,
            "{namespace}.example"
        );
    }
}
