//! A JWT client's connection in the front end: admission at CONNECT (token, namespace,
//! session slot, broker username, the ACL in place before mosquitto sees the CONNECT), then
//! the MQTT 5 AUTH re-authentication the front end answers itself, and the token's expiry.
//!
//! Reason codes (Event Grid documents none for JWT failures; it says it uses the MQTT 5
//! specification's, mqtt-support.md; these follow the spec's meanings):
//! - CONNACK 0x86 Bad User Name or Password: a token that does not authenticate (malformed,
//!   signature, issuer, audience, `exp`/`nbf`, missing claims);
//! - CONNACK 0x87 Not authorized: a valid Entra token whose principal holds no TopicSpaces
//!   Publisher/Subscriber role in the namespace;
//! - CONNACK 0x8C Bad authentication method: a method other than `OAUTH2-JWT`/`CUSTOM-JWT`;
//! - AUTH 0x00 Success: a re-authentication (AUTH 0x19, same method) with a valid token for the
//!   same identity; the session's expiry moves to the new token's `exp`;
//! - DISCONNECT 0x87 Not authorized: a re-authentication whose token is refused, or the token's
//!   `exp` passed without one; DISCONNECT 0x8C for another method, 0x82 Protocol Error for an
//!   AUTH with another reason code (or from a client that did not authenticate with a method).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ViewSource;
use super::acl::entra_username;
use super::frontend::FrontEnd;
use super::jwt::{Method, Pick, Rejection, Verified, verify};
use super::model::ClientView;
use super::packet::{Connect, Refusal};
use super::props::{self, Authentication, REAUTHENTICATE, SUCCESS};
use super::session::{ClientStats, LiveJwtClient, LiveJwtGuard, SessionGuard};

/// DISCONNECT reason: Not authorized.
pub(crate) const NOT_AUTHORIZED: u8 = 0x87;
/// DISCONNECT reason: Bad authentication method.
const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
/// DISCONNECT reason: Protocol Error.
pub(crate) const PROTOCOL_ERROR: u8 = 0x82;
/// How long a CONNECT waits for the broker ACL to include the client.
const ACL_WAIT: Duration = Duration::from_secs(3);

/// The JWT side of one connection.
pub(crate) struct JwtSession {
    verified: Verified,
    client_id: String,
    /// The ACL entry of a CUSTOM-JWT client.
    live: Option<LiveJwtGuard>,
    source: Arc<ViewSource>,
    stats: Arc<ClientStats>,
}

/// What the front end does with a client's AUTH packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Send this AUTH back and go on.
    Reply(Vec<u8>),
    /// End the connection with a DISCONNECT of this reason; the cause is logged.
    Disconnect(u8, String),
}

/// Checks a CONNECT's token and takes a session slot; returns the broker username, the slot
/// and the JWT state of the connection.
pub(crate) async fn admit(
    front: &FrontEnd,
    sni: Option<&str>,
    connect: &Connect,
    auth: &Authentication,
) -> Result<(String, SessionGuard, JwtSession), Rejection> {
    let method = Method::parse(&auth.method).ok_or_else(|| Rejection {
        refusal: Refusal::BadAuthenticationMethod,
        cause: format!("unknown authentication method {:?}", auth.method),
    })?;
    let token = auth.data.as_deref().ok_or_else(|| Rejection {
        refusal: Refusal::BadCredentials,
        cause: format!(
            "{} without authentication data (the token)",
            method.as_str()
        ),
    })?;
    let view = front.source.current();
    let issuer = &front.source.identity().issuer;
    let verified = verify(&view, issuer, method, token, Pick::Sni(sni))?;
    let max_sessions = view
        .namespaces
        .iter()
        .find(|ns| ns.name == verified.namespace)
        .map_or(1, |ns| ns.max_sessions);
    let guard = front
        .sessions
        .acquire(
            &verified.namespace,
            &verified.authentication_name,
            &connect.client_id,
            max_sessions,
        )
        .map_err(|refusal| Rejection {
            refusal,
            cause: "session refused".into(),
        })?;
    let (username, live) = match method {
        Method::Entra => {
            let username = entra_username(&verified.namespace, &verified.authentication_name)
                .ok_or_else(|| Rejection {
                    refusal: Refusal::BadCredentials,
                    cause: "the oid cannot be a broker username".into(),
                })?;
            (username, None)
        }
        Method::Custom => {
            let live = front.live.register(LiveJwtClient {
                namespace: verified.namespace.clone(),
                client: client_of(&verified),
            });
            (live.username().to_owned(), Some(live))
        }
    };
    // The broker must know the client's rights before it sees the CONNECT.
    let synced = front.source.synced(ACL_WAIT).await && front.live.synced(ACL_WAIT).await;
    if !synced {
        tracing::warn!(%username, "the broker ACL did not catch up in time; rights may lag");
    }
    let session = JwtSession {
        verified,
        client_id: connect.client_id.clone(),
        live,
        source: Arc::clone(&front.source),
        stats: Arc::clone(&front.stats),
    };
    Ok((username, guard, session))
}

fn client_of(verified: &Verified) -> ClientView {
    ClientView::from_token(&verified.authentication_name, verified.attributes.clone())
}

/// When `at` (wall clock) falls on the tokio clock.
fn instant_of(at: SystemTime) -> tokio::time::Instant {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + left
}

impl JwtSession {
    /// The authentication method of the session.
    pub(crate) fn method(&self) -> Method {
        self.verified.method
    }

    /// When the current token expires.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        instant_of(self.verified.expires)
    }

    /// Counts and logs that the token expired without re-authentication.
    pub(crate) fn expire(&self) {
        self.stats.update(&self.client_id, |s| s.expired += 1);
        tracing::info!(
            client_id = %self.client_id,
            identity = %self.verified.authentication_name,
            "MQTT session closed: its token expired without re-authentication (DISCONNECT 0x87)"
        );
    }

    /// Answers a client's AUTH packet.
    pub(crate) async fn on_auth(&mut self, packet: &[u8]) -> AuthOutcome {
        let outcome = self.reauthenticate(packet);
        // New claims, new rights: in the ACL before the client hears of success.
        if outcome == Ok(true)
            && let Some(live) = &self.live
            && !live.update(client_of(&self.verified), ACL_WAIT).await
        {
            tracing::warn!(client_id = %self.client_id, "the broker ACL did not catch up in time");
        }
        let client_id = &self.client_id;
        match &outcome {
            Ok(_) => {
                self.stats.update(client_id, |s| s.reauthentications += 1);
                tracing::info!(
                    %client_id,
                    identity = %self.verified.authentication_name,
                    "MQTT client re-authenticated"
                );
                AuthOutcome::Reply(props::auth(SUCCESS, self.method().as_str()))
            }
            Err((reason, cause)) => {
                self.stats
                    .update(client_id, |s| s.reauthentication_failures += 1);
                tracing::info!(%client_id, %cause, reason, "MQTT re-authentication refused");
                AuthOutcome::Disconnect(*reason, cause.clone())
            }
        }
    }

    /// Checks the AUTH and takes its token; whether the attributes changed.
    fn reauthenticate(&mut self, packet: &[u8]) -> Result<bool, (u8, String)> {
        let auth = props::parse_auth(packet)
            .map_err(|e| (PROTOCOL_ERROR, format!("malformed AUTH: {e}")))?;
        if auth.reason != REAUTHENTICATE {
            return Err((
                PROTOCOL_ERROR,
                format!("AUTH with reason 0x{:02x} from a client", auth.reason),
            ));
        }
        let method = self.method().as_str();
        let Some(authentication) = auth.authentication.filter(|a| a.method == method) else {
            return Err((
                BAD_AUTHENTICATION_METHOD,
                format!("AUTH without the session's method {method}"),
            ));
        };
        if auth.user_properties {
            return Err((NOT_AUTHORIZED, "AUTH with user properties".into()));
        }
        let token = authentication
            .data
            .ok_or_else(|| (NOT_AUTHORIZED, "AUTH without a token".to_owned()))?;
        let view = self.source.current();
        let issuer = &self.source.identity().issuer;
        let pick = Pick::Namespace(&self.verified.namespace);
        let renewed = verify(&view, issuer, self.method(), &token, pick)
            .map_err(|rejection| (NOT_AUTHORIZED, rejection.cause))?;
        if renewed.authentication_name != self.verified.authentication_name {
            return Err((
                NOT_AUTHORIZED,
                format!(
                    "the new token is for {}, the session for {}",
                    renewed.authentication_name, self.verified.authentication_name
                ),
            ));
        }
        let changed = renewed.attributes != self.verified.attributes;
        self.verified = renewed;
        Ok(changed)
    }
}
