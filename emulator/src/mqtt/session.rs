//! Live connections as the front end counts them: the session slots that enforce
//! `maximumClientSessionsPerAuthenticationName` ([`Sessions`]), the CUSTOM-JWT clients whose
//! attributes came from their tokens and so must be written into the broker ACL while they are
//! connected ([`LiveJwtClients`]), and the per-client-id counters tests read
//! ([`ClientStats`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::model::ClientView;
use super::packet::Refusal;
use crate::stats::MqttClientStats;

/// Live sessions, to enforce `maximumClientSessionsPerAuthenticationName` and keep a client
/// id to one authentication name.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    inner: Mutex<SessionsInner>,
}

#[derive(Debug, Default)]
struct SessionsInner {
    /// (namespace, authentication name) → client id → live connections.
    by_name: HashMap<(String, String), HashMap<String, usize>>,
    /// (namespace, client id) → the authentication name holding it.
    owners: HashMap<(String, String), String>,
    /// Numbers connections with an empty client id, each a session of its own.
    anonymous: u64,
}

/// A session slot, given back on drop.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    sessions: Arc<Sessions>,
    namespace: String,
    name: String,
    client_id: String,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for `client_id` of `name`. The same client id reconnecting takes over its
    /// session and needs no new slot; a client id live under another authentication name is
    /// refused (Event Grid: unauthorized).
    pub(crate) fn acquire(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        client_id: &str,
        max: usize,
    ) -> Result<SessionGuard, Refusal> {
        let namespace = namespace.to_lowercase();
        let name = name.to_lowercase();
        let mut inner = self.lock();
        let client_id = if client_id.is_empty() {
            inner.anonymous += 1;
            format!("\0anonymous-{}", inner.anonymous)
        } else {
            client_id.to_owned()
        };
        let id_key = (namespace.clone(), client_id.clone());
        if inner
            .owners
            .get(&id_key)
            .is_some_and(|owner| *owner != name)
        {
            return Err(Refusal::NotAuthorized);
        }
        let sessions = inner
            .by_name
            .entry((namespace.clone(), name.clone()))
            .or_default();
        if !sessions.contains_key(&client_id) && sessions.len() >= max {
            return Err(Refusal::QuotaExceeded);
        }
        *sessions.entry(client_id.clone()).or_default() += 1;
        inner.owners.insert(id_key, name.clone());
        Ok(SessionGuard {
            sessions: Arc::clone(self),
            namespace,
            name,
            client_id,
        })
    }

    /// Live sessions of an authentication name.
    #[cfg(test)]
    fn count(&self, namespace: &str, name: &str) -> usize {
        self.lock()
            .by_name
            .get(&(namespace.to_lowercase(), name.to_lowercase()))
            .map_or(0, HashMap::len)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut inner = self.sessions.lock();
        let key = (self.namespace.clone(), self.name.clone());
        let Some(sessions) = inner.by_name.get_mut(&key) else {
            return;
        };
        if let Some(count) = sessions.get_mut(&self.client_id) {
            *count -= 1;
            if *count == 0 {
                sessions.remove(&self.client_id);
                inner
                    .owners
                    .remove(&(self.namespace.clone(), self.client_id.clone()));
            }
        }
        if inner.by_name.get(&key).is_some_and(HashMap::is_empty) {
            inner.by_name.remove(&key);
        }
    }
}

/// A CUSTOM-JWT client on a live connection: the ACL needs a section for it, made from the
/// attributes its token carries.
#[derive(Clone, Debug)]
pub(crate) struct LiveJwtClient {
    /// The namespace name.
    pub(crate) namespace: String,
    /// The client as the token describes it (authentication name = `sub`).
    pub(crate) client: ClientView,
}

/// The CUSTOM-JWT clients connected now, by broker username, with a generation that the ACL
/// sync compares (like the control-plane state's).
#[derive(Debug, Default)]
pub(crate) struct LiveJwtClients {
    inner: Mutex<BTreeMap<String, LiveJwtClient>>,
    next: AtomicU64,
    generation: AtomicU64,
    /// The generation whose ACL mosquitto was last told to load.
    applied: AtomicU64,
    /// Wakes the ACL sync early.
    pub(crate) changed: Notify,
}

/// A live client's entry, removed on drop.
#[derive(Debug)]
pub(crate) struct LiveJwtGuard {
    clients: Arc<LiveJwtClients>,
    username: String,
}

impl LiveJwtClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LiveJwtClient>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.notify_one();
        generation
    }

    /// Adds a client under a new broker username `{namespace}/$custom/{n}` (`$` cannot start a
    /// client resource name, so it never meets a certificate client's username).
    pub(crate) fn register(self: &Arc<Self>, client: LiveJwtClient) -> LiveJwtGuard {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let username = format!("{}/$custom/{n}", client.namespace);
        self.lock().insert(username.clone(), client);
        self.bump();
        LiveJwtGuard {
            clients: Arc::clone(self),
            username,
        }
    }

    /// The clients and the generation they are at.
    pub(crate) fn snapshot(&self) -> (u64, Vec<(String, LiveJwtClient)>) {
        let inner = self.lock();
        let generation = self.generation.load(Ordering::Acquire);
        let clients = inner.iter().map(|(u, c)| (u.clone(), c.clone())).collect();
        (generation, clients)
    }

    /// Records that mosquitto's ACL now reflects `generation`.
    pub(crate) fn applied(&self, generation: u64) {
        self.applied.fetch_max(generation, Ordering::AcqRel);
    }

    /// Waits until the ACL reflects every change made before the call; false after `timeout`.
    pub(crate) async fn synced(&self, timeout: Duration) -> bool {
        let target = self.generation.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + timeout;
        while self.applied.load(Ordering::Acquire) < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl LiveJwtGuard {
    /// The broker username of this client.
    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    /// Replaces the client's attributes (a re-authentication with new claims) and waits up
    /// to `timeout` for the ACL to follow; false if it did not.
    pub(crate) async fn update(&self, client: ClientView, timeout: Duration) -> bool {
        if let Some(entry) = self.clients.lock().get_mut(&self.username) {
            entry.client = client;
        }
        self.clients.bump();
        self.clients.synced(timeout).await
    }
}

impl Drop for LiveJwtGuard {
    fn drop(&mut self) {
        self.clients.lock().remove(&self.username);
        self.clients.bump();
    }
}

/// [`MqttClientStats`] per client id.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    inner: Mutex<HashMap<String, MqttClientStats>>,
}

impl ClientStats {
    /// Changes the counters of `client_id`.
    pub(crate) fn update(&self, client_id: &str, f: impl FnOnce(&mut MqttClientStats)) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(inner.entry(client_id.to_owned()).or_default());
    }

    /// The counters of `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> MqttClientStats {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.get(client_id).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn sessions_are_counted_per_authentication_name() {
        let sessions = Arc::new(Sessions::default());
        let a = sessions.acquire("ns", "bridge", "b1", 2).unwrap();
        let b = sessions.acquire("ns", "Bridge", "b2", 2).unwrap();
        assert_eq!(
            sessions.acquire("ns", "bridge", "b3", 2).unwrap_err(),
            Refusal::QuotaExceeded
        );
        // Taking over its own session needs no new slot.
        let again = sessions.acquire("ns", "bridge", "b1", 2).unwrap();
        // Another name may not take a live client id.
        assert_eq!(
            sessions.acquire("ns", "mosquitto", "b1", 2).unwrap_err(),
            Refusal::NotAuthorized
        );
        // Other namespaces count apart.
        let other = sessions.acquire("ns2", "bridge", "b3", 1).unwrap();
        assert_eq!(sessions.count("ns", "bridge"), 2);
        drop((a, again));
        let c = sessions.acquire("ns", "bridge", "b3", 2).unwrap();
        drop((b, c, other));
        assert_eq!(sessions.count("ns", "bridge"), 0);
        let first = sessions.acquire("ns", "x", "", 1).unwrap();
        assert_eq!(
            sessions.acquire("ns", "x", "", 1).unwrap_err(),
            Refusal::QuotaExceeded,
            "an empty client id is a new session"
        );
        drop(first);
        assert!(sessions.lock().owners.is_empty());
    }

    #[tokio::test]
    async fn live_jwt_clients_come_and_go_with_their_guards() {
        let clients = Arc::new(LiveJwtClients::default());
        let client = ClientView {
            name: "d1".into(),
            authentication_name: "d1".into(),
            enabled: true,
            scheme: super::super::model::Scheme::Subject,
            thumbprints: Vec::new(),
            attributes: Map::new(),
        };
        let guard = clients.register(LiveJwtClient {
            namespace: "ns".into(),
            client: client.clone(),
        });
        assert_eq!(guard.username(), "ns/$custom/1");
        let (generation, live) = clients.snapshot();
        assert_eq!(live.len(), 1);
        assert!(!clients.synced(Duration::from_millis(20)).await);
        clients.applied(generation);
        assert!(clients.synced(Duration::from_millis(20)).await);
        drop(guard);
        assert!(clients.snapshot().1.is_empty());
    }
}
