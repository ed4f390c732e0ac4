//! The HTTP server: binding, serving until shutdown, and the handle tests hold.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::service::{App, Request};
use crate::stats::{CapturedRequest, Stats};
use crate::{EmulatorConfig, EmulatorError};

/// An emulator bound to its address, not yet serving.
///
/// [`Emulator::start`] binds and serves in a background task in one step, which is what tests
/// want; [`Emulator::bind`] + [`Emulator::run`] suit a binary that serves until a signal.
pub struct Emulator {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Arc<App>,
}

impl Emulator {
    /// Checks the configuration, loads the state file and binds the listen address.
    pub async fn bind(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        config.validate()?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        let app = Arc::new(App::new(config, local_addr)?);
        Ok(Self {
            listener,
            local_addr,
            app,
        })
    }

    /// The bound address (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves requests until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EmulatorError> {
        let addr = self.local_addr;
        tracing::info!(%addr, "event grid emulator listening");
        let router = Router::new().fallback(handle).with_state(self.app);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| EmulatorError::Serve { addr, source })
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
        let token = CancellationToken::new();
        let task = tokio::spawn(emulator.run(token.clone()));
        Ok(RunningEmulator {
            app,
            local_addr,
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

/// A serving emulator. Dropping it stops the server without waiting; [`shutdown`](Self::shutdown)
/// stops it and waits.
pub struct RunningEmulator {
    app: Arc<App>,
    local_addr: SocketAddr,
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

    /// Stops accepting requests, lets in-flight ones finish and waits for the server task.
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
