//! The MQTT data plane: a TLS port that enforces what the control plane holds, built on a
//! private mosquitto.
//!
//! ```text
//! client ──TLS──▶ front end (Rust) ──TCP 127.0.0.1──▶ mosquitto (ACL file, max_qos 1, 512 KiB)
//!                  │ client cert → CA / thumbprint           ▲
//!                  │ CONNECT → client, scheme, sessions      │ SIGHUP after rewriting the ACL
//!                  ▼                                         │
//!                control-plane state ──────── ACL sync ──────┘
//! ```
//!
//! - `frontend`: TLS, CONNECT, authentication, session quota, then bytes piped to mosquitto.
//! - `auth`: which registered client a certificate and a CONNECT stand for.
//! - `jwt`: which namespace and identity an `OAUTH2-JWT` or `CUSTOM-JWT` token stands for.
//! - `jwt_session`: a JWT connection's admission, AUTH re-authentication and expiry.
//! - `session`: live session slots, live CUSTOM-JWT clients, per-client-id counters.
//! - `throttle`: the per-session publish quota.
//! - `model`: the control-plane view the data plane uses.
//! - `acl`: the mosquitto ACL file made from the view and the live JWT clients.
//! - `broker`: mosquitto's configuration and ACL reloads (the process is a
//!   [`crate::mosquitto::Mosquitto`]).
//! - `packet`: CONNECT/CONNACK encoding and packet framing; `props`: v5 properties and AUTH.
//! - `tls`: the data-plane CA, server certificates and the client certificate check.

mod acl;
mod auth;
mod broker;
mod frontend;
mod jwt;
mod jwt_session;
mod model;
mod packet;
mod props;
mod session;
mod throttle;
mod tls;

pub(crate) use session::ClientStats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::EmulatorError;
use crate::config::MqttConfig;
use crate::identity::Identity;
use crate::service::App;
use model::View;
use session::LiveJwtClients;

/// How often the ACL sync looks for control-plane changes (and completes due operations).
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// The control-plane state as the data plane sees it, rebuilt only when the state changed.
pub(crate) struct ViewSource {
    app: Arc<App>,
    cache: Mutex<(u64, Arc<View>)>,
    /// The generation whose ACL mosquitto was last told to load.
    applied: AtomicU64,
}

impl ViewSource {
    fn new(app: Arc<App>) -> Self {
        let (generation, view) = Self::build(&app);
        Self {
            app,
            cache: Mutex::new((generation, view)),
            applied: AtomicU64::new(generation),
        }
    }

    fn build(app: &App) -> (u64, Arc<View>) {
        app.with_settled_state(|state| {
            let generation = app.generation();
            (generation, Arc::new(View::from_state(state, generation)))
        })
    }

    /// Waits until mosquitto's ACL reflects every change made before the call; false after
    /// `timeout`.
    pub(crate) async fn synced(&self, timeout: Duration) -> bool {
        let target = self.app.with_settled_state(|_| self.app.generation());
        let deadline = tokio::time::Instant::now() + timeout;
        while self.applied.load(Ordering::Acquire) < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The emulator's token issuer (the Entra ID stand-in for `OAUTH2-JWT`).
    pub(crate) fn identity(&self) -> &Identity {
        self.app.identity()
    }

    /// The current view.
    pub(crate) fn current(&self) -> Arc<View> {
        let generation = self.app.generation();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 != generation {
            *cache = Self::build(&self.app);
        }
        Arc::clone(&cache.1)
    }

    /// Completes due operations, then returns the current view.
    fn tick(&self) -> Arc<View> {
        self.app.with_settled_state(|_| ());
        self.current()
    }
}

/// The data plane, bound and with mosquitto running, not yet serving.
pub(crate) struct DataPlane {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The MQTT-over-WebSocket listener and its address, when configured.
    websocket: Option<(TcpListener, SocketAddr)>,
    front: Arc<frontend::FrontEnd>,
    broker: broker::Broker,
    acl: String,
    ca_path: PathBuf,
    // Holds mosquitto's configuration, ACL and log (and the CA PEM unless placed elsewhere);
    // removed when the data plane stops.
    _dir: tempfile::TempDir,
}

impl DataPlane {
    /// Binds the MQTT port, makes the data-plane CA, writes the ACL for the current state and
    /// starts mosquitto.
    pub(crate) async fn bind(
        config: &MqttConfig,
        mqtt_hostname: &str,
        app: Arc<App>,
    ) -> Result<Self, EmulatorError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let websocket = match config.websocket_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| EmulatorError::Bind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| EmulatorError::Bind { addr, source })?;
                Some((listener, local))
            }
            None => None,
        };
        let dir = tempfile::Builder::new()
            .prefix("e4k-emulator-mqtt-")
            .tempdir()
            .map_err(|source| EmulatorError::WriteFile {
                path: std::env::temp_dir(),
                source,
            })?;

        let certs = tls::ServerCerts::new(server_names(config, mqtt_hostname, local_addr))
            .map_err(|reason| EmulatorError::Certificate { reason })?;
        let ca_path = config
            .ca_file
            .clone()
            .unwrap_or_else(|| dir.path().join("ca.pem"));
        std::fs::write(&ca_path, certs.ca_pem()).map_err(|source| EmulatorError::WriteFile {
            path: ca_path.clone(),
            source,
        })?;

        let source = Arc::new(ViewSource::new(app));
        let acl = acl::acl_file(&source.current(), &[]);
        let binary = config
            .mosquitto_binary
            .clone()
            .unwrap_or_else(crate::mosquitto::default_binary);
        let broker = broker::Broker::start(&binary, dir.path(), &acl).await?;
        let server_config = tls::server_config(Arc::new(certs), Arc::clone(&source))
            .map_err(|reason| EmulatorError::Certificate { reason })?;
        let front = Arc::new(frontend::FrontEnd {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server_config)),
            source,
            broker: broker.addr(),
            sessions: Arc::default(),
            publish_limit: config.session_publish_limit,
            live: Arc::default(),
            stats: Arc::default(),
        });
        Ok(Self {
            listener,
            local_addr,
            websocket,
            front,
            broker,
            acl,
            ca_path,
            _dir: dir,
        })
    }

    /// The bound MQTT address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound MQTT-over-WebSocket address, when configured.
    pub(crate) fn websocket_addr(&self) -> Option<SocketAddr> {
        self.websocket.as_ref().map(|(_, addr)| *addr)
    }

    /// The data-plane CA certificate (PEM file).
    pub(crate) fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The control-plane view, shared with the handle tests hold.
    pub(crate) fn source(&self) -> Arc<ViewSource> {
        Arc::clone(&self.front.source)
    }

    /// The per-client-id counters, shared with the handle tests hold.
    pub(crate) fn client_stats(&self) -> Arc<ClientStats> {
        Arc::clone(&self.front.stats)
    }

    /// Serves until `token` is cancelled; then closes every connection and stops mosquitto.
    pub(crate) async fn run(self, token: CancellationToken) {
        let Self {
            listener,
            local_addr,
            websocket,
            front,
            broker,
            acl,
            ca_path: _,
            _dir,
        } = self;
        tracing::info!(addr = %local_addr, broker = %broker.addr(), "MQTT data plane listening");
        let serve = Arc::clone(&front).serve(listener, token.clone(), false);
        let serve_websocket = async {
            if let Some((listener, addr)) = websocket {
                tracing::info!(%addr, "MQTT over WebSocket listening");
                Arc::clone(&front)
                    .serve(listener, token.clone(), true)
                    .await;
            }
        };
        let sync = sync_acl(&front.source, &front.live, &broker, acl, token.clone());
        tokio::join!(serve, serve_websocket, sync);
        drop(broker);
        tracing::debug!("MQTT data plane stopped");
    }
}

/// Rewrites the ACL and reloads mosquitto whenever the control-plane state or the set of live
/// CUSTOM-JWT clients changes what it grants.
async fn sync_acl(
    source: &ViewSource,
    live: &LiveJwtClients,
    broker: &broker::Broker,
    mut last: String,
    token: CancellationToken,
) {
    let mut interval = tokio::time::interval(SYNC_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_view: Option<Arc<View>> = None;
    let mut last_live = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = interval.tick() => {}
            () = live.changed.notified() => {}
        }
        let view = source.tick();
        let (live_generation, clients) = live.snapshot();
        if last_view.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view))
            && last_live == Some(live_generation)
        {
            continue;
        }
        let acl = acl::acl_file(&view, &clients);
        if acl != last {
            if let Err(error) = broker.reload_acl(&acl).await {
                // Retried on the next tick.
                tracing::warn!(error = %error, "cannot reload the mosquitto ACL");
                continue;
            }
            tracing::info!("control plane changed: mosquitto ACL rewritten and reloaded");
            last = acl;
        }
        source.applied.store(view.generation, Ordering::Release);
        live.applied(live_generation);
        last_view = Some(view);
        last_live = Some(live_generation);
    }
}

/// The names of the default server certificate: loopback, the listen address, the configured
/// hostname (when it has no `{namespace}`/`{region}` placeholder) and any extra ones.
fn server_names(config: &MqttConfig, mqtt_hostname: &str, local_addr: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let ip = local_addr.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    if !mqtt_hostname.contains('{') {
        names.push(mqtt_hostname.to_owned());
    }
    names.extend(config.hostnames.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.to_ascii_lowercase()));
    names
}
