//! JWT authentication toward the remote broker, against a scripted MQTT 5 broker that records
//! each CONNECT's authentication method and data: a Microsoft Entra ID token from the
//! configured credential (`OAUTH2-JWT`), a token file (`CUSTOM-JWT`, re-read at each
//! connection), a credential that fails (one clear error, retried, not ready), and no token
//! text in `Debug`, `/metrics` or readiness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use e4k_bridge::config::{Authentication, BridgeConfig};
use e4k_bridge::engine::EntraCredential;
use e4k_tests::Mosquitto;
use e4k_tests::bridge::{ConnectorYaml, Running, loopback_options, resolve};
use e4k_tests::scripted::{ConnScript, Script, ScriptedBroker};

const WAIT: Duration = Duration::from_secs(15);

/// Every log line of this test binary, at TRACE for every crate (`-vvv` and more).
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Panics when any log line so far contains `secret`.
fn assert_not_logged(secret: &str) {
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(!logs.is_empty());
    assert!(
        !logs.contains(secret),
        "the token {secret} was logged:\n{logs}"
    );
}

/// Hands out `token-<n>` for the scope it was asked, counting the calls; fails when `fail`.
#[derive(Debug)]
struct FakeCredential {
    calls: AtomicU32,
    scopes: std::sync::Mutex<Vec<String>>,
    fail: bool,
}

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.scopes
            .lock()
            .unwrap()
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        if self.fail {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "AADSTS700016: application not found in the directory",
            ));
        }
        Ok(AccessToken::new(
            format!("token-{n}"),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

fn fake(fail: bool) -> Arc<FakeCredential> {
    Arc::new(FakeCredential {
        calls: AtomicU32::new(0),
        scopes: std::sync::Mutex::default(),
        fail,
    })
}

/// A config whose remote is the scripted broker, authenticating with `authentication` (the
/// scripted broker speaks plain TCP; validation, which demands TLS for tokens, is tested in
/// bridge/tests/config.rs).
fn config(local: u16, remote: u16, authentication: Authentication) -> Vec<BridgeConfig> {
    let routes = "    - direction: local-to-remote\n      name: out\n      source: jwt/#\n";
    let yaml = ConnectorYaml {
        remote_secret: None,
        ..ConnectorYaml::new("jwt", routes)
    }
    .render();
    let mut bridges = resolve(
        &yaml,
        &loopback_options(format!("127.0.0.1:{remote}"), local),
    );
    bridges[0].remote.authentication = authentication;
    bridges
}

async fn scripted() -> ScriptedBroker {
    ScriptedBroker::start(Script {
        receive_maximum: 100,
        connections: Vec::new(),
        then: ConnScript::behave(false),
    })
    .await
    .unwrap()
}

/// The scripted remote drops the bridge's first connection; the next one, once the bridge is
/// ready again, authenticates with `data`.
async fn reconnects_with(running: &Running, remote: &ScriptedBroker, data: &[u8]) {
    assert!(remote.disconnect(0));
    running
        .wait_for(|r| r.ready && remote.connections().len() >= 2)
        .await
        .unwrap();
    let (_, sent) = remote.connections()[1].authentication.clone().unwrap();
    assert_eq!(&sent[..], data);
}

/// A bridge (not yet ready) from a local broker to the scripted remote, authenticating with
/// Entra tokens for Event Grid from `credential`.
struct EntraBridge {
    _local: Mosquitto,
    remote: ScriptedBroker,
    credential: Arc<FakeCredential>,
    configs: Vec<BridgeConfig>,
    running: Running,
}

impl EntraBridge {
    async fn start(credential: Arc<FakeCredential>) -> EntraBridge {
        let local = Mosquitto::start("allow_anonymous true\n").unwrap();
        let remote = scripted().await;
        let mut options = e4k_tests::bridge::fast_run_options();
        options.entra_credential = Some(EntraCredential(credential.clone()));
        let configs = config(
            local.port(),
            remote.port(),
            Authentication::EntraToken {
                audience: "https://eventgrid.azure.net/".into(),
            },
        );
        let running = Running::start(&configs, options).unwrap().with_wait(WAIT);
        EntraBridge {
            _local: local,
            remote,
            credential,
            configs,
            running,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entra_token_from_the_credential_is_sent_as_oauth2_jwt() {
    capture_logs();
    let EntraBridge {
        _local,
        remote,
        credential,
        configs,
        running,
    } = EntraBridge::start(fake(false)).await;
    running.ready().await;
    let stats = remote.connections();
    let (method, data) = stats[0].authentication.clone().expect("no authentication");
    assert_eq!(method, "OAUTH2-JWT");
    assert_eq!(&data[..], b"token-0");
    assert_eq!(
        credential.scopes.lock().unwrap()[0],
        "https://eventgrid.azure.net/.default"
    );
    // The token shows nowhere.
    let readiness = format!("{:?}", running.handle.readiness());
    assert!(!readiness.contains("token-0"), "{readiness}");
    assert!(!running.handle.metrics().contains("token-0"));
    assert!(!format!("{configs:?}").contains("token-0"));
    // A new connection gets a new token.
    reconnects_with(&running, &remote, b"token-1").await;
    running.stop().await;
    assert_not_logged("token-0");
    assert_not_logged("token-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_is_sent_as_custom_jwt_and_reread_at_each_connection() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first.token.value\n").unwrap();
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let remote = scripted().await;
    let configs = config(
        local.port(),
        remote.port(),
        Authentication::JwtFile {
            token_file: file.clone(),
        },
    );
    let running = Running::start(&configs, e4k_tests::bridge::fast_run_options())
        .unwrap()
        .with_wait(WAIT);
    running.ready().await;
    let (method, data) = remote.connections()[0].authentication.clone().unwrap();
    assert_eq!(method, "CUSTOM-JWT");
    assert_eq!(&data[..], b"first.token.value");
    std::fs::write(&file, "second.token.value").unwrap();
    reconnects_with(&running, &remote, b"second.token.value").await;
    running.stop().await;
    assert_not_logged("first.token.value");
    assert_not_logged("second.token.value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_credential_is_one_clear_error_retried_and_not_ready() {
    capture_logs();
    let EntraBridge {
        _local,
        remote,
        credential,
        configs: _,
        running,
    } = EntraBridge::start(fake(true)).await;
    let readiness = running
        .wait_for(|_| credential.calls.load(Ordering::SeqCst) >= 3)
        .await
        .unwrap();
    assert!(!readiness.ready);
    let remote_status = readiness
        .connections
        .iter()
        .find(|c| c.broker == "remote")
        .unwrap();
    let error = remote_status.last_error.clone().unwrap();
    assert!(
        error.contains(
            "cannot get a Microsoft Entra token for https://eventgrid.azure.net/.default"
        ) && error.contains("AADSTS700016"),
        "{error}"
    );
    // Nothing reached the broker without a token.
    assert!(remote.connections().is_empty());
    running.stop().await;
}
