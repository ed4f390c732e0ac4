//! The HTTP server (ARM routes and the managed-identity endpoint, and the MQTT data plane when
//! configured): binding, serving until shutdown, and the handle tests hold.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::identity::{self, DataRole, TokenIssuer, roles};
use crate::mqtt::{ClientStats, DataPlane, ViewSource};
use crate::service::{App, Request};
use crate::stats::{CapturedRequest, MqttClientStats, Stats};
use crate::{EmulatorConfig, EmulatorError};

/// An emulator bound to its address, not yet serving.
///
/// [`Emulator::start`] binds and serves in a background task in one step, which is what tests
/// want; [`Emulator::bind`] + [`Emulator::run`] suit a binary that serves until a signal.
pub struct Emulator {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Arc<App>,
    mqtt: Option<DataPlane>,
}

impl Emulator {
    /// Checks the configuration, loads the state file and binds the listen address. With
    /// [`EmulatorConfig::mqtt`] set it also binds the MQTT port, makes the data-plane CA and
    /// starts mosquitto (stopped again when the emulator stops or is dropped).
    pub async fn bind(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        config.validate()?;
        let mqtt_config = config.mqtt.clone();
        let mqtt_hostname = config.mqtt_hostname.clone();
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let app = Arc::new(App::new(config, local_addr)?);
        let mqtt = match &mqtt_config {
            Some(mqtt) => Some(DataPlane::bind(mqtt, &mqtt_hostname, Arc::clone(&app)).await?),
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            app,
            mqtt,
        })
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound MQTT (TLS) address, when the data plane is configured.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().map(DataPlane::local_addr)
    }

    /// The managed-identity endpoint (`IDENTITY_ENDPOINT`), e.g.
    /// `http://127.0.0.1:8890/msi/token`.
    pub fn identity_endpoint(&self) -> String {
        format!("http://{}{}", self.local_addr, identity::endpoint::PATH)
    }

    /// The bound MQTT-over-WebSocket address, when
    /// [`MqttConfig::websocket_listen`](crate::MqttConfig::websocket_listen) is set.
    pub fn mqtt_websocket_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().and_then(DataPlane::websocket_addr)
    }

    /// The PEM file of the data-plane CA that MQTT clients must trust, when the data plane is
    /// configured.
    pub fn mqtt_ca_pem_path(&self) -> Option<&Path> {
        self.mqtt.as_ref().map(DataPlane::ca_path)
    }

    /// Serves requests (and MQTT) until `shutdown` is cancelled, then lets in-flight requests
    /// finish, closes MQTT connections and stops mosquitto.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EmulatorError> {
        let addr = self.local_addr;
        tracing::info!(%addr, "event grid emulator listening");
        let router = Router::new()
            .route(identity::endpoint::PATH, get(identity_token))
            .fallback(handle)
            .with_state(self.app);
        let arm = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let data_plane = async {
            if let Some(mqtt) = self.mqtt {
                mqtt.run(shutdown.clone()).await;
            }
        };
        let (served, ()) = tokio::join!(
            async {
                let served = arm.await;
                // If the HTTP server fails, the data plane stops too.
                shutdown.cancel();
                served
            },
            data_plane
        );
        served.map_err(|source| EmulatorError::Serve { addr, source })
    }

    /// Binds and serves in a background task; the returned handle stops it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), e4k_emulator::EmulatorError> {
    /// let emulator = e4k_emulator::Emulator::start(Default::default()).await?;
    /// println!("ARM endpoint: {}", emulator.base_url());
    /// assert_eq!(emulator.stats().writes(), 0);
    /// emulator.shutdown().await
    /// # }
    /// ```
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        let emulator = Self::bind(config).await?;
        let app = Arc::clone(&emulator.app);
        let local_addr = emulator.local_addr;
        let mqtt = emulator.mqtt.as_ref().map(|m| MqttHandle {
            addr: m.local_addr(),
            websocket: m.websocket_addr(),
            ca_path: m.ca_path().to_owned(),
            source: m.source(),
            stats: m.client_stats(),
        });
        let token = CancellationToken::new();
        let task = tokio::spawn(emulator.run(token.clone()));
        Ok(RunningEmulator {
            app,
            local_addr,
            mqtt,
            token,
            task: Some(task),
        })
    }
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = app.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = app.handle(Request {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    });
    tracing::debug!(%method, path = uri.path(), status = %response.status(), "request");
    response
}

/// The managed-identity endpoint (`IDENTITY_ENDPOINT`).
async fn identity_token(State(app): State<Arc<App>>, uri: Uri, headers: HeaderMap) -> Response {
    app.identity_request(uri.query(), &headers)
}

/// What a running emulator keeps of its data plane.
struct MqttHandle {
    addr: SocketAddr,
    websocket: Option<SocketAddr>,
    ca_path: PathBuf,
    source: Arc<ViewSource>,
    stats: Arc<ClientStats>,
}

/// A serving emulator. Dropping it stops the server without waiting; [`shutdown`](Self::shutdown)
/// stops it and waits.
pub struct RunningEmulator {
    app: Arc<App>,
    local_addr: SocketAddr,
    mqtt: Option<MqttHandle>,
    token: CancellationToken,
    task: Option<JoinHandle<Result<(), EmulatorError>>>,
}

impl RunningEmulator {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The ARM endpoint to give clients instead of `https://management.azure.com`, e.g.
    /// `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The MQTT (TLS) address, when [`EmulatorConfig::mqtt`] is set.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().map(|m| m.addr)
    }

    /// The MQTT-over-WebSocket address, when
    /// [`MqttConfig::websocket_listen`](crate::MqttConfig::websocket_listen) is set.
    pub fn mqtt_websocket_addr(&self) -> Option<SocketAddr> {
        self.mqtt.as_ref().and_then(|m| m.websocket)
    }

    /// The PEM file of the data-plane CA that MQTT clients must trust (`mosquitto_pub
    /// --cafile`), when [`EmulatorConfig::mqtt`] is set. It lives as long as the emulator
    /// unless [`MqttConfig::ca_file`](crate::MqttConfig::ca_file) placed it elsewhere.
    pub fn mqtt_ca_pem_path(&self) -> Option<&Path> {
        self.mqtt.as_ref().map(|m| m.ca_path.as_path())
    }

    /// Waits until the broker's topic ACL reflects every control-plane change made so far
    /// (the data plane applies changes within about 100 ms). Returns false after `timeout`, or
    /// at once when there is no data plane.
    pub async fn mqtt_synced(&self, timeout: std::time::Duration) -> bool {
        match &self.mqtt {
            Some(m) => m.source.synced(timeout).await,
            None => false,
        }
    }

    /// The managed-identity endpoint (`IDENTITY_ENDPOINT`) on the ARM port, e.g.
    /// `http://127.0.0.1:41234/msi/token`; see [`identity_env`](Self::identity_env).
    pub fn identity_endpoint(&self) -> String {
        format!("{}{}", self.base_url(), identity::endpoint::PATH)
    }

    /// The variables that point `azure_identity`'s `ManagedIdentityCredential` (App Service
    /// protocol) at the emulator: `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    pub fn identity_env(&self) -> [(&'static str, String); 2] {
        [
            ("IDENTITY_ENDPOINT", self.identity_endpoint()),
            (
                "IDENTITY_HEADER",
                self.app.identity().config.header_secret.clone(),
            ),
        ]
    }

    /// The emulator's token issuer: the key behind the identity endpoint, which the MQTT
    /// front end trusts for `OAUTH2-JWT` (its [`issuer`](TokenIssuer::issuer) is
    /// `{base_url}/{tenant}/`). Tests sign tokens with it directly.
    pub fn token_issuer(&self) -> &TokenIssuer {
        &self.app.identity().issuer
    }

    /// Assigns `role` to `principal_id` at `scope` (a namespace's ARM id, or
    /// `{namespaceId}/topicSpaces/{name}`) as role assignment `name`, straight into the state
    /// (the data plane applies it within about 100 ms; [`mqtt_synced`](Self::mqtt_synced)
    /// waits for it).
    pub fn assign_role(
        &self,
        name: &str,
        principal_id: &str,
        role: DataRole,
        scope: &str,
    ) -> Result<(), EmulatorError> {
        self.app
            .update_state(|state| roles::assign(state, name, principal_id, role, scope))?
    }

    /// Removes role assignment `name` of the namespace that `scope` is in; false when there is
    /// none.
    pub fn remove_role_assignment(&self, scope: &str, name: &str) -> Result<bool, EmulatorError> {
        self.app
            .update_state(|state| roles::remove(state, scope, name))
    }

    /// The MQTT front end's counters for `client_id` (zero when it never connected).
    pub fn mqtt_client_stats(&self, client_id: &str) -> MqttClientStats {
        self.mqtt
            .as_ref()
            .map(|m| m.stats.get(client_id))
            .unwrap_or_default()
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// Every request received so far (empty when `capture_requests` is off).
    pub fn captured_requests(&self) -> Vec<CapturedRequest> {
        self.app.captured()
    }

    /// Clears the counters and the request log, e.g. before a rerun whose writes are counted.
    pub fn reset_stats(&self) {
        self.app.reset_stats();
    }

    /// Stops accepting requests, lets in-flight ones finish and waits for the server task (and
    /// for mosquitto to be stopped, with the data plane).
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        self.token.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(|source| EmulatorError::Join {
                addr: self.local_addr,
                source,
            })?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
