//! Token refresh on a live session: before a connection's JWT expires, a new token is fetched
//! from the same source (the Microsoft Entra credential, or the token file, re-read) and sent
//! in an MQTT 5 AUTH packet with reason code 0x19 (re-authenticate). The session, its
//! subscriptions and its in-flight messages stay as they are: Event Grid disconnects a
//! session whose token expires, and a refresh avoids exactly that.
//!
//! One task per JWT connection ([`run`]). The poll task tells it, through a `watch` channel,
//! which token the current connection was opened with ([`Session`], on CONNACK) and that the
//! connection is gone (`None`); the broker's answer to an AUTH comes back to the poll task as
//! an event (counted and logged there). Token text never reaches a log line: only the method
//! and the expiry do.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::conn::Conn;
use super::token::TokenSource;

/// The token a connected session was opened with (or last re-authenticated with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Session {
    /// Counts connections, so that a refresh for a connection that is gone is not sent on
    /// the next one.
    pub(crate) generation: u64,
    /// When the token was fetched.
    pub(crate) issued: SystemTime,
    /// When it expires.
    pub(crate) expires: SystemTime,
}

/// How long before expiry a token is refreshed, at least (when its lifetime allows).
const MIN_MARGIN: Duration = Duration::from_secs(5);
/// How long before expiry a token is refreshed, at most.
const MAX_MARGIN: Duration = Duration::from_secs(4 * 60);
/// How long to wait before trying again when no new token could be had.
const RETRY: Duration = Duration::from_secs(2);

/// When to refresh a token fetched at `issued` that expires at `expires`: a fifth of its
/// lifetime before it expires, between [`MIN_MARGIN`] and [`MAX_MARGIN`], and never in the
/// first half of its life.
pub(crate) fn refresh_at(issued: SystemTime, expires: SystemTime) -> SystemTime {
    let lifetime = expires.duration_since(issued).unwrap_or_default();
    let margin = (lifetime / 5)
        .clamp(MIN_MARGIN, MAX_MARGIN)
        .min(lifetime / 2);
    expires.checked_sub(margin).unwrap_or(issued)
}

/// Refreshes the token of `conn` before it expires, while the bridge runs.
pub(crate) async fn run(
    conn: Arc<Conn>,
    source: Arc<TokenSource>,
    mut sessions: watch::Receiver<Option<Session>>,
    stop: CancellationToken,
) {
    'session: loop {
        let Some(session) = *sessions.borrow_and_update() else {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                changed = sessions.changed() => if changed.is_err() { return },
            }
            continue;
        };
        let mut token_expires = session.expires;
        let mut wake = refresh_at(session.issued, session.expires);
        loop {
            let wait = wake
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                changed = sessions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue 'session;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let token = match source.fetch().await {
                Ok(token) => token,
                Err(cause) => {
                    conn.metrics.reauth_failed.inc();
                    warn!(
                        broker = conn.side.as_str(),
                        client_id = %conn.client_id,
                        "cannot refresh the token before it expires: {cause}; retrying in {}s",
                        RETRY.as_secs()
                    );
                    wake = SystemTime::now() + RETRY;
                    continue;
                }
            };
            if sessions.borrow().map(|s| s.generation) != Some(session.generation) {
                // The connection changed while the token was fetched.
                continue 'session;
            }
            let Some(expires) = token.expires.filter(|at| *at > token_expires) else {
                // The source handed out the same token again (a credential's cache, a file
                // not rewritten yet): ask again shortly, until it expires.
                debug!(
                    method = token.method,
                    "the token source has no newer token yet; asking again in {}s",
                    RETRY.as_secs()
                );
                wake = SystemTime::now() + RETRY;
                continue;
            };
            if let Err(error) = conn.client.reauth(token.method, token.data).await {
                debug!(%error, "re-authentication not sent; the bridge is stopping");
                return;
            }
            let left = expires
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs();
            info!(
                broker = conn.side.as_str(),
                client_id = %conn.client_id,
                method = token.method,
                expires_in_secs = left,
                "re-authenticating with a new token"
            );
            token_expires = expires;
            wake = refresh_at(SystemTime::now(), expires);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tokens_are_refreshed_a_fifth_of_their_life_early_within_bounds() {
        // 20 s: 5 s before (the minimum margin).
        assert_eq!(refresh_at(at(100), at(120)), at(115));
        // 6 s: never in the first half of its life.
        assert_eq!(refresh_at(at(100), at(106)), at(103));
        // 10 min: a fifth = 2 min.
        assert_eq!(refresh_at(at(0), at(600)), at(480));
        // 1 h: at most 4 min early.
        assert_eq!(refresh_at(at(0), at(3600)), at(3360));
        // Expired or inverted: at once.
        assert_eq!(refresh_at(at(100), at(90)), at(90));
    }
}
