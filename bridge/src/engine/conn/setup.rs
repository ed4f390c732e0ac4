//! Connecting: the TLS configuration, the credentials and the hints each attempt needs.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info};

use crate::config::Tls;
use crate::engine::mqtt::EventLoop;
use crate::engine::tls::{self, ReloadingIdentity};

/// How a connection authenticates.
#[derive(Debug)]
pub(crate) enum Credentials {
    /// Nothing (or only the TLS client certificate).
    None,
    /// A Kubernetes service account token, read at each connect (`K8S-SAT`).
    Token(PathBuf),
    /// A JWT toward the remote broker (`OAUTH2-JWT` or `CUSTOM-JWT`), fetched before each
    /// attempt.
    Jwt(Arc<crate::engine::token::TokenSource>),
    /// Username and password files.
    UserPass {
        /// Username file.
        username: PathBuf,
        /// Password file.
        password: PathBuf,
    },
}

/// What a connection needs before each attempt.
#[derive(Debug)]
pub(crate) struct Setup {
    /// TLS settings, when TLS is on.
    pub(crate) tls: Option<Tls>,
    /// The client certificate, for X.509 authentication.
    pub(crate) identity: Option<Arc<ReloadingIdentity>>,
    /// Other credentials.
    pub(crate) credentials: Credentials,
    /// MQTT over WebSocket (then TLS means `wss://`).
    pub(crate) websocket: bool,
    /// The TLS configuration, once built.
    pub(super) config: Option<Arc<rustls::ClientConfig>>,
    /// The trusted CA's files when `config` was built ([`tls::trust_stamp`]).
    pub(super) trust_stamp: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
    /// Whether the missing token was reported already.
    pub(super) token_warned: bool,
    /// A hint for the next failure's message (e.g. the client certificate has expired).
    pub(super) hint: Option<String>,
    /// When the JWT of the next connection was fetched and when it expires.
    pub(super) token: Option<(std::time::SystemTime, std::time::SystemTime)>,
    /// Tells the token refresh task about each connection (JWT connections only).
    pub(crate) sessions: Option<tokio::sync::watch::Sender<Option<crate::engine::reauth::Session>>>,
    /// Connections so far.
    pub(super) generation: u64,
}

impl Setup {
    pub(crate) fn new(
        tls: Option<Tls>,
        identity: Option<Arc<ReloadingIdentity>>,
        credentials: Credentials,
        websocket: bool,
    ) -> Self {
        Setup {
            tls,
            identity,
            credentials,
            websocket,
            config: None,
            trust_stamp: Vec::new(),
            token_warned: false,
            hint: None,
            token: None,
            sessions: None,
            generation: 0,
        }
    }

    /// Why a broker that refuses the connection may have done so, for token credentials.
    pub(super) fn refusal_hint(&self, cause: &str) -> Option<String> {
        use crate::engine::token::TokenSource;
        let Credentials::Jwt(source) = &self.credentials else {
            return None;
        };
        // Event Grid documents no reason codes for JWTs; the emulator (and these hints) use
        // Not authorized for a valid token without a role, Bad user name or password for a
        // token it cannot accept.
        let no_role = cause.contains("NotAuthorized");
        Some(match &**source {
            TokenSource::Entra { audience, .. } if no_role => format!(
                "the broker accepted the Microsoft Entra token for {audience} but its principal \
                 has no EventGrid TopicSpaces Publisher/Subscriber role assignment on the \
                 namespace or a topic space"
            ),
            TokenSource::Entra { audience, .. } => format!(
                "the broker refused the Microsoft Entra token for {audience}: it expired, or \
                 the namespace expects another audience"
            ),
            TokenSource::File(path) if no_role => format!(
                "the broker accepted the CUSTOM-JWT token of {} but its client attributes \
                 match no permission binding",
                path.display()
            ),
            TokenSource::File(path) => format!(
                "the broker refused the CUSTOM-JWT token of {}: it expired, or its issuer or \
                 audience is not the namespace's customJwtAuthentication",
                path.display()
            ),
        })
    }

    /// A connection was accepted: tells the token refresh task which token it runs on.
    pub(super) fn connected(&mut self) {
        self.generation += 1;
        if let (Some(sessions), Some((issued, expires))) = (&self.sessions, self.token) {
            sessions.send_replace(Some(crate::engine::reauth::Session {
                generation: self.generation,
                issued,
                expires,
            }));
        }
    }

    /// The token source of a JWT connection.
    pub(crate) fn token_source(&self) -> Option<Arc<crate::engine::token::TokenSource>> {
        match &self.credentials {
            Credentials::Jwt(source) => Some(Arc::clone(source)),
            _ => None,
        }
    }

    /// Reads what may have changed since the last attempt and updates the event loop's
    /// settings.
    pub(super) async fn prepare(&mut self, eventloop: &mut EventLoop) -> Result<(), String> {
        self.hint = None;
        if let Some(tls) = &self.tls {
            let stamp = tls::trust_stamp(tls);
            if self.config.is_none() || stamp != self.trust_stamp {
                if self.config.is_some() {
                    info!("the trusted CA changed; the next connection is verified against it");
                }
                let roots = tls::load_roots(tls)
                    .map_err(|reason| format!("cannot load the trusted CA: {reason}"))?;
                let config = tls::client_config(roots, self.identity.clone())
                    .map_err(|error| format!("cannot set up TLS: {error}"))?;
                eventloop.set_tls(Arc::clone(&config), self.websocket);
                self.config = Some(config);
                self.trust_stamp = stamp;
            }
            if let Some(identity) = &self.identity {
                let info = identity
                    .refresh()
                    .map_err(|error| format!("cannot load the client certificate: {error}"))?;
                if info.expired {
                    self.hint = Some(format!(
                        "the client certificate in {} has expired",
                        identity.dir().display()
                    ));
                }
            }
        }
        match &self.credentials {
            Credentials::None => {}
            Credentials::Token(path) => match std::fs::read(path) {
                Ok(token) => {
                    eventloop
                        .set_authentication(Some("K8S-SAT".to_owned()), Some(Bytes::from(token)));
                }
                Err(error) => {
                    // Validation at startup warns about a missing token once; this is
                    // the per-session detail.
                    if !self.token_warned {
                        debug!(
                            token = %path.display(),
                            %error,
                            "service account token not readable; connecting without \
                             credentials"
                        );
                        self.token_warned = true;
                    }
                    eventloop.set_authentication(None, None);
                }
            },
            Credentials::Jwt(source) => {
                let token = source.fetch().await?;
                self.token = token
                    .expires
                    .map(|expires| (std::time::SystemTime::now(), expires));
                match token.expires_in() {
                    Some(left) if left <= 0 => {
                        self.hint =
                            Some(format!("the {} token expired {}s ago", token.method, -left));
                    }
                    Some(left) => debug!(method = token.method, expires_in_secs = left, "token"),
                    None => debug!(method = token.method, "token without an expiry claim"),
                }
                eventloop.set_authentication(Some(token.method.to_owned()), Some(token.data));
            }
            Credentials::UserPass { username, password } => {
                let read = |path: &PathBuf| {
                    std::fs::read_to_string(path)
                        .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                        .map_err(|error| format!("cannot read {}: {error}", path.display()))
                };
                eventloop.set_credentials(read(username)?, read(password)?);
            }
        }
        Ok(())
    }
}
