//! One broker connection (a client session) and its three tasks.
//!
//! A connection plays two roles at once. As a **source** it subscribes the filters of the
//! routes that start on its broker and hands each matching message to its destination
//! connection's publisher; as a **destination** it publishes what its origin connections
//! received. A main session is the destination of the main session on the other broker and
//! of the shared-subscription members of its instance there, so one destination may carry
//! forwards from several origins.
//!
//! # Several origins on one destination
//!
//! Each forward ([`Pending`]) carries its origin: the [`Ticket`] in its settlement holds the
//! origin connection's [`Gate`] (and that gate's generation), and the route metrics it counts
//! on. The destination correlates its publishes with packet identifiers without caring about
//! origins (its publisher is the only caller of `try_publish`, so `Outgoing::Publish` events
//! come in publish order), and a PUBACK settles exactly the ticket of the forward it
//! acknowledges, in whichever gate that is. The publisher queue is shared by the origins and
//! preserves each origin's order (as do the outbox and its resend list after a session loss),
//! and it is sized for all of them: each origin holds at most [`gate_limit`] unsettled
//! messages per route. An origin never waits for another: a source's read-pause (at most
//! [`MAX_PAUSE`]) depends only on its own gate, and the destination publishes the origins'
//! forwards in the order they were queued.
//!
//! # Tasks
//!
//! - **poll** ([`run_poll`]) owns the rumqttc `EventLoop`, polls it and never blocks: it only
//!   takes short locks, uses `try_send` and wakes the other tasks. It never publishes (a
//!   publish from the polling task can freeze rumqttc under load, rumqtt#1025).
//! - **publisher** ([`run_publisher`]) is the only caller of `try_publish` on this
//!   connection, so the order of its calls is the order in which rumqttc reports
//!   `Outgoing::Publish(pkid)` events: that is how a PUBACK is matched to its message
//!   (rumqttc's `publish()` returns no packet identifier).
//! - **acker** ([`run_acker`]) sends the PUBACKs of the source role, in arrival order.
//!
//! # At-least-once and ordering
//!
//! Every QoS ≥ 1 message received takes a place in the connection's [`Gate`], in arrival
//! order. The place is released when each of its forwards is *settled*: acknowledged by the
//! destination, or deliberately dropped (and counted). The acker acknowledges from the front
//! of the gate while the front is released, so acknowledgements go out in arrival order (MQTT
//! v5 §4.6) and only after the destination took the message. The gate is bounded by the
//! Receive Maximum the bridge announces; the destination side keeps each unacknowledged
//! message (payload shared, not copied) until its PUBACK.
//!
//! # Reconnects
//!
//! After any connection error the poll task drops the client's own queue of unacknowledged
//! publishes and its protocol state ([`EventLoop::on_lost`]: rumqttc 0.25 would silently
//! discard the queue when the broker has no session, and a stale packet-id collision would
//! wedge it for good, rumqtt#1056/#1014; rumqttc-v5-next would replay it behind the engine's
//! back), and marks every unsettled forward for re-publication; the publisher publishes
//! them again, in order, before anything new.
//!
//! # Tokens
//!
//! A JWT connection (MQTT 5) has a fourth task, [`reauth::run`](super::reauth::run), that
//! refreshes the token on the live session before it expires; the poll task tells it about
//! each connection and reports the broker's answers. The gate is discarded: the source broker
//! redelivers what was not acknowledged (with a persistent session), and those arrivals are
//! counted as duplicates. Reconnection waits a capped, jittered exponential backoff.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::{Publish, SubscribeFilter as Filter};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::backoff::{Backoff, BackoffPolicy};
use super::forward::{self, Limits, Message, RetainPolicy, Shape};
use super::metrics::{ConnMetrics, DropReason, RouteMetrics};
use super::mqtt::{self, Client, EventLoop, Outgoing, PollError, Polled};
use super::tls::{self, ReloadingIdentity};
use crate::config::{Tls, TopicFilter};

/// Locks a mutex, ignoring poisoning: the state stays consistent because no code panics while
/// holding these locks.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which broker a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The edge broker.
    Local,
    /// Event Grid (or a stand-in).
    Remote,
}

impl Side {
    /// `local` or `remote`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "remote",
        }
    }
}

/// A route as one source connection sees it.
#[derive(Debug)]
pub(crate) struct RouteCtx {
    /// The route's name.
    pub(crate) name: String,
    /// The route's source filter (without any `$share/` prefix), for matching.
    pub(crate) filter: TopicFilter,
    /// The static target topic.
    pub(crate) target: Option<String>,
    /// The publish QoS, already capped for the destination side.
    pub(crate) qos: QoS,
    /// Metric handles.
    pub(crate) metrics: Arc<RouteMetrics>,
}

/// Engine-wide forwarding settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Reconnect backoff.
    pub(crate) backoff: BackoffPolicy,
    /// Hop limit.
    pub(crate) hop_limit: u32,
    /// Retain policy.
    pub(crate) retain: RetainPolicy,
    /// Receive Maximum announced to the broker: the in-flight window of the source role.
    pub(crate) window: u16,
}

// ---------------------------------------------------------------------------------------------
// The gate: ordered acknowledgements of the source role.

/// One received QoS ≥ 1 message waiting for its forwards.
#[derive(Debug)]
struct GateEntry {
    pkid: u16,
    qos: QoS,
    /// Forwards not settled yet; 0 = ready to acknowledge.
    remaining: usize,
}

#[derive(Debug, Default)]
struct GateState {
    /// Bumped when the connection is lost: tickets of older generations are ignored.
    generation: u64,
    /// Sequence number of `entries[0]`.
    base: u64,
    entries: VecDeque<GateEntry>,
    /// Entries whose forwards are not all settled.
    unsettled: usize,
    /// Whether acknowledgements can be sent (the connection is up).
    connected: bool,
}

/// The ordered acknowledgement gate of one source connection.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Wakes the acker: the front entry is ready.
    wake: Notify,
    /// Wakes a paused poll task: entries were acknowledged.
    space: Notify,
    /// Whether the acker holds acknowledgements it has not handed to rumqttc yet.
    busy: AtomicBool,
}

/// A forward's claim on a gate place.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    generation: u64,
    seq: u64,
}

impl Ticket {
    /// Releases the place at once.
    pub(crate) fn complete(self) {
        if let Some(gate) = self.release() {
            gate.wake.notify_one();
        }
    }

    /// Releases the place; the acker is woken later, by [`AckerWakes::wake_all`] (the poll
    /// task of the destination wakes each acker once per batch of acknowledgements).
    fn complete_deferred(self, wakes: &mut AckerWakes) {
        if let Some(gate) = self.release() {
            wakes.add(gate);
        }
    }

    /// Releases the place; the gate when its acker has acknowledgements to send.
    fn release(self) -> Option<Arc<Gate>> {
        let mut state = lock(&self.gate.state);
        if state.generation != self.generation {
            return None;
        }
        let index = self
            .seq
            .checked_sub(state.base)
            .and_then(|i| usize::try_from(i).ok())?;
        let entry = state.entries.get_mut(index)?;
        if entry.remaining == 0 {
            return None;
        }
        entry.remaining -= 1;
        let settled = entry.remaining == 0;
        if settled {
            state.unsettled = state.unsettled.saturating_sub(1);
        }
        let front_ready = state.entries.front().is_some_and(|e| e.remaining == 0);
        drop(state);
        if settled {
            self.gate.space.notify_one();
        }
        front_ready.then_some(self.gate)
    }
}

/// Gates whose ackers are to be woken once the poll task has handled the events at hand.
#[derive(Debug, Default)]
struct AckerWakes(Vec<Arc<Gate>>);

impl AckerWakes {
    fn add(&mut self, gate: Arc<Gate>) {
        if !self.0.iter().any(|known| Arc::ptr_eq(known, &gate)) {
            self.0.push(gate);
        }
    }

    fn wake_all(&mut self) {
        for gate in self.0.drain(..) {
            gate.wake.notify_one();
        }
    }
}

impl Gate {
    /// Adds a received message with `forwards` forwards; returns the generation and
    /// sequence number for its tickets, or `None` when more than `limit` messages have
    /// unsettled forwards (the broker ignored our Receive Maximum by far). Settled entries
    /// waiting for their acknowledgement are small and bounded by the packet identifier
    /// space.
    fn push(&self, pkid: u16, qos: QoS, forwards: usize, limit: usize) -> Option<(u64, u64)> {
        let mut state = lock(&self.state);
        if state.unsettled >= limit || state.entries.len() >= usize::from(u16::MAX) {
            return None;
        }
        let seq = state.base + state.entries.len() as u64;
        state.entries.push_back(GateEntry {
            pkid,
            qos,
            remaining: forwards,
        });
        if forwards > 0 {
            state.unsettled += 1;
        }
        let ready = forwards == 0 && state.entries.len() == 1;
        let generation = state.generation;
        drop(state);
        if ready {
            self.wake.notify_one();
        }
        Some((generation, seq))
    }

    /// Moves the acknowledgeable front entries into `out`.
    fn take_ready(&self, out: &mut Vec<(u16, QoS)>) {
        let mut state = lock(&self.state);
        if !state.connected {
            return;
        }
        while state.entries.front().is_some_and(|e| e.remaining == 0) {
            if let Some(entry) = state.entries.pop_front() {
                state.base += 1;
                out.push((entry.pkid, entry.qos));
            }
        }
        if !out.is_empty() {
            self.busy.store(true, Ordering::Release);
        }
    }

    /// Discards every entry: the packet identifiers belong to a connection that is gone.
    fn reset(&self, connected: bool) {
        let mut state = lock(&self.state);
        state.generation += 1;
        state.base += state.entries.len() as u64;
        state.entries.clear();
        state.unsettled = 0;
        state.connected = connected;
        drop(state);
        self.space.notify_one();
    }

    /// Whether every received message has been acknowledged to the source.
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.state).entries.is_empty() && !self.busy.load(Ordering::Acquire)
    }

    /// Messages held whose forwards are not all settled.
    fn unsettled(&self) -> usize {
        lock(&self.state).unsettled
    }

    /// Whether acknowledgements are waiting to be sent.
    pub(crate) fn has_ready(&self) -> bool {
        let state = lock(&self.state);
        self.busy.load(Ordering::Acquire)
            || (state.connected && state.entries.front().is_some_and(|e| e.remaining == 0))
    }
}

// ---------------------------------------------------------------------------------------------
// The outbox: unacknowledged forwards of the destination role.

/// How a forward ends.
#[derive(Debug)]
pub(crate) struct Settle {
    /// The origin's gate place (none for QoS 0, and for forwards read from the spool, whose
    /// source was acknowledged when they became durable).
    pub(crate) ticket: Option<Ticket>,
    pub(crate) metrics: Arc<RouteMetrics>,
    /// The spool record to remove once the forward is settled.
    pub(crate) spool: Option<SpoolAck>,
}

/// Tells the spool that the record `seq` is settled.
#[derive(Debug)]
pub(crate) struct SpoolAck {
    pub(crate) seq: u64,
    pub(crate) tx: mpsc::UnboundedSender<u64>,
}

impl Settle {
    /// Counts the outcome and releases the gate place.
    fn finish(self, outcome: Result<Duration, DropReason>) {
        self.metrics.end(outcome);
        if let Some(ticket) = self.ticket {
            ticket.complete();
        }
        if let Some(ack) = self.spool {
            let _ = ack.tx.send(ack.seq);
        }
    }

    /// [`finish`](Self::finish), with the acker's wake-up deferred to `wakes`.
    fn finish_deferred(self, outcome: Result<Duration, DropReason>, wakes: &mut AckerWakes) {
        self.metrics.end(outcome);
        if let Some(ticket) = self.ticket {
            ticket.complete_deferred(wakes);
        }
        if let Some(ack) = self.spool {
            let _ = ack.tx.send(ack.seq);
        }
    }

    /// Counts the drop but keeps the gate place: the message is not acknowledged, so the
    /// source broker delivers it again after the reconnect that follows. A spooled forward
    /// is not a drop: it stays in the spool for the next start.
    fn abandon(self, reason: DropReason) {
        if self.spool.is_some() {
            self.metrics.end_unsettled();
        } else {
            self.metrics.end(Err(reason));
        }
    }
}

/// A forward on its way to the destination.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) message: Message,
    pub(crate) settle: Settle,
    /// Written to a connection that was lost before the acknowledgement: publishing it again
    /// is a retry (a forward rumqttc had not written yet is merely published late).
    pub(crate) written: bool,
}

#[derive(Debug, Default)]
struct Outbox {
    connected: bool,
    limits: Limits,
    /// Published (handed to rumqttc), packet identifier not known yet.
    queued: VecDeque<Pending>,
    /// Written with a packet identifier, waiting for PUBACK / PUBREC.
    inflight: VecDeque<(u16, Pending)>,
    /// To publish again after a reconnect, before anything new.
    resend: VecDeque<Pending>,
    /// Since when published forwards have waited without any acknowledgement (`None` when
    /// nothing published waits): how a stalled session shows.
    waiting_since: Option<Instant>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.inflight.is_empty() && self.resend.is_empty()
    }

    /// A forward was handed to rumqttc.
    fn sent(&mut self, pending: Pending) {
        self.queued.push_back(pending);
        if self.waiting_since.is_none() {
            self.waiting_since = Some(Instant::now());
        }
    }

    /// The destination acknowledged something (or a QoS 0 forward was written).
    fn progressed(&mut self) {
        self.waiting_since =
            (!self.queued.is_empty() || !self.inflight.is_empty()).then(Instant::now);
    }
}

// ---------------------------------------------------------------------------------------------
// The connection.

/// Health of a connection, for `/readyz`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    pub(crate) connected: bool,
    pub(crate) subscribed: bool,
    /// The broker refused the last message the bridge published (e.g. not authorized).
    pub(crate) publishes_refused: bool,
    pub(crate) last_error: Option<String>,
    /// How long the oldest published forward has waited for an acknowledgement, when that
    /// is longer than the connection's stall limit.
    pub(crate) stalled: Option<Duration>,
}

/// A broker connection shared by its tasks.
pub(crate) struct Conn {
    pub(crate) side: Side,
    pub(crate) bridge: String,
    pub(crate) client_id: String,
    pub(crate) endpoint: String,
    pub(crate) client: Client,
    outbox: Mutex<Outbox>,
    wake_publisher: Notify,
    /// Set by the publisher before it waits for rumqttc to take requests (or for the
    /// connection): only then do the poll task's events wake it.
    publisher_blocked: AtomicBool,
    /// A blocked publisher is woken once no more than this many of its publishes wait in
    /// rumqttc's request channel, so that it hands over a batch rather than one at a time.
    publisher_low_water: usize,
    pub(crate) gate: Arc<Gate>,
    status: Mutex<Status>,
    filters: Vec<Filter>,
    pub(crate) metrics: ConnMetrics,
    /// How long published forwards may wait for an acknowledgement before the connection
    /// counts as stalled.
    stall_after: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("side", &self.side)
            .field("client_id", &self.client_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection that is not connected yet.
    pub(crate) fn new(
        side: Side,
        bridge: &str,
        endpoint: String,
        options: mqtt::Options,
        filters: Vec<Filter>,
        metrics: ConnMetrics,
        channel: usize,
    ) -> Result<(Arc<Conn>, EventLoop), String> {
        let client_id = options.client_id();
        let stall_after = options.keep_alive();
        let (client, eventloop) = mqtt::client(options, channel)?;
        let conn = Conn {
            side,
            bridge: bridge.to_owned(),
            client_id,
            endpoint,
            client,
            outbox: Mutex::new(Outbox::default()),
            wake_publisher: Notify::new(),
            publisher_blocked: AtomicBool::new(false),
            publisher_low_water: channel / 2,
            gate: Arc::new(Gate::default()),
            status: Mutex::new(Status::default()),
            filters,
            metrics,
            stall_after,
        };
        Ok((Arc::new(conn), eventloop))
    }

    /// The connection's health.
    pub(crate) fn status(&self) -> Status {
        let stalled = self.stalled();
        let mut status = lock(&self.status).clone();
        status.stalled = stalled;
        status
    }

    /// How long published forwards have waited for any acknowledgement while connected, when
    /// that exceeds the stall limit (a keep-alive): a broker acknowledges in milliseconds, so
    /// a session that takes messages but acknowledges none for that long is stuck, whatever
    /// its keep-alive says (a client wedged by rumqtt#1056 answers pings).
    pub(crate) fn stalled(&self) -> Option<Duration> {
        let outbox = lock(&self.outbox);
        let waited = outbox.waiting_since.filter(|_| outbox.connected)?.elapsed();
        (waited > self.stall_after).then_some(waited)
    }

    /// Whether every forward this connection publishes is settled.
    pub(crate) fn outbox_empty(&self) -> bool {
        lock(&self.outbox).is_empty()
    }

    /// Wakes the publisher if it waits for rumqttc to take requests and rumqttc has room for
    /// a batch; `queued` is the number of its publishes still in rumqttc's request channel
    /// (read under the outbox lock when `None`). While more are queued, rumqttc reports each
    /// one it takes with an event, so a later event wakes the publisher.
    fn wake_publisher_if_blocked(&self, queued: Option<usize>) {
        if self.publisher_blocked.load(Ordering::SeqCst) {
            let queued = queued.unwrap_or_else(|| lock(&self.outbox).queued.len());
            if queued <= self.publisher_low_water {
                self.wake_publisher.notify_one();
            }
        }
    }

    fn set_status(&self, update: impl FnOnce(&mut Status)) {
        update(&mut lock(&self.status));
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting: TLS, credentials.

/// How a connection authenticates.
#[derive(Debug)]
pub(crate) enum Credentials {
    /// Nothing (or only the TLS client certificate).
    None,
    /// A Kubernetes service account token, read at each connect (`K8S-SAT`).
    Token(PathBuf),
    /// A JWT toward the remote broker (`OAUTH2-JWT` or `CUSTOM-JWT`), fetched before each
    /// attempt.
    Jwt(Arc<super::token::TokenSource>),
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
    config: Option<Arc<rustls::ClientConfig>>,
    /// The trusted CA's files when `config` was built ([`tls::trust_stamp`]).
    trust_stamp: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
    /// Whether the missing token was reported already.
    token_warned: bool,
    /// A hint for the next failure's message (e.g. the client certificate has expired).
    hint: Option<String>,
    /// When the JWT of the next connection was fetched and when it expires.
    token: Option<(std::time::SystemTime, std::time::SystemTime)>,
    /// Tells the token refresh task about each connection (JWT connections only).
    pub(crate) sessions: Option<tokio::sync::watch::Sender<Option<super::reauth::Session>>>,
    /// Connections so far.
    generation: u64,
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
    fn refusal_hint(&self, cause: &str) -> Option<String> {
        use super::token::TokenSource;
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
    fn connected(&mut self) {
        self.generation += 1;
        if let (Some(sessions), Some((issued, expires))) = (&self.sessions, self.token) {
            sessions.send_replace(Some(super::reauth::Session {
                generation: self.generation,
                issued,
                expires,
            }));
        }
    }

    /// The token source of a JWT connection.
    pub(crate) fn token_source(&self) -> Option<Arc<super::token::TokenSource>> {
        match &self.credentials {
            Credentials::Jwt(source) => Some(Arc::clone(source)),
            _ => None,
        }
    }

    /// Reads what may have changed since the last attempt and updates the event loop's
    /// settings.
    async fn prepare(&mut self, eventloop: &mut EventLoop) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// The poll task.

/// Everything the poll task of one connection needs.
pub(crate) struct PollCtx {
    /// This connection.
    pub(crate) conn: Arc<Conn>,
    /// The routes whose source is this connection's broker.
    pub(crate) routes: Vec<Arc<RouteCtx>>,
    /// Where messages that match no route are counted.
    pub(crate) unroutable: Arc<RouteMetrics>,
    /// The destination connection's publisher queue (shared with its other origins).
    pub(crate) forward_tx: mpsc::Sender<Pending>,
    /// Capacity of the destination's queue kept free for the QoS ≥ 1 messages of all its
    /// origins (QoS 0 ones are dropped beyond it).
    pub(crate) reserve: usize,
    /// Connection setup.
    pub(crate) setup: Setup,
    /// Forwarding settings.
    pub(crate) policy: Policy,
    /// Stop taking new messages (then drain).
    pub(crate) shutdown: CancellationToken,
    /// Stop now.
    pub(crate) stop: CancellationToken,
}

/// The most messages with unsettled forwards a source session holds before it reconnects as
/// a last resort: the Receive Maximum it announces, with room for brokers that do not honour it
/// (mosquitto 2.0.11 keeps sending once acknowledgements flow, and sends a session's whole
/// backlog on reconnect). See [`pause_limit`] for the first line of defence.
pub(crate) fn gate_limit(window: u16) -> usize {
    usize::from(window) * 4 + 256
}

/// Above this many messages whose forwards are not settled, the poll task stops reading
/// (TCP backpressure) until forwards settle, for at most [`MAX_PAUSE`] at a time. A broker
/// that honours the Receive Maximum never gets there.
fn pause_limit(window: u16) -> usize {
    usize::from(window) * 2 + 64
}

/// The longest a poll task pauses in one go: it keeps handling its destination role (and
/// keep-alive) at least this often, so that two sessions that wait for each other's
/// acknowledgements cannot deadlock.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Waits while the gate is over the pause limit. Returns false when stopping.
async fn pause_while_full(gate: &Gate, window: u16, stop: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + MAX_PAUSE;
    while gate.unsettled() >= pause_limit(window) {
        tokio::select! {
            biased;
            () = stop.cancelled() => return false,
            () = gate.space.notified() => {}
            () = tokio::time::sleep_until(deadline) => return true,
        }
    }
    true
}

/// Polls the connection's event loop until shutdown.
pub(crate) async fn run_poll(mut eventloop: EventLoop, mut ctx: PollCtx) {
    let mut backoff = Backoff::new(ctx.policy.backoff);
    let mut need_connect = true;
    let mut connected_once = false;
    let mut subscribe_pending = false;
    let gate_limit = gate_limit(ctx.policy.window);
    let mut over_window_warned = false;
    let mut stall_warned = false;
    let mut wakes = AckerWakes::default();
    loop {
        // The events of one network read are handled before the ackers they concern are
        // woken, so that an acker sends a batch of acknowledgements rather than one at a time.
        if !eventloop.has_buffered_events() {
            wakes.wake_all();
        }
        if need_connect {
            if ctx.shutdown.is_cancelled() {
                break;
            }
            if let Err(cause) = ctx.setup.prepare(&mut eventloop).await {
                if !ctx.failed(cause, &mut backoff).await {
                    break;
                }
                continue;
            }
            need_connect = false;
        }
        if !pause_while_full(&ctx.conn.gate, ctx.policy.window, &ctx.stop).await {
            break;
        }
        let event = tokio::select! {
            biased;
            () = ctx.stop.cancelled() => break,
            event = eventloop.poll() => event,
        };
        let mut force_reconnect = None;
        match event {
            Ok(Polled::ConnAck {
                session_present,
                limits,
            }) => {
                backoff.reset();
                subscribe_pending = !ctx.conn.filters.is_empty();
                if subscribe_pending {
                    subscribe_pending = !ctx.try_subscribe();
                }
                ctx.on_connack(session_present, limits, connected_once);
                ctx.setup.connected();
                connected_once = true;
            }
            Ok(Polled::Reauthenticated(outcome)) => ctx.on_reauthenticated(outcome),
            Ok(Polled::Publish(publish)) => {
                if !over_window_warned
                    && publish.qos != QoS::AtMostOnce
                    && ctx.conn.gate.unsettled() >= usize::from(ctx.policy.window)
                {
                    over_window_warned = true;
                    warn!(
                        broker = ctx.conn.side.as_str(),
                        client_id = %ctx.conn.client_id,
                        "the broker sends more unacknowledged messages than the Receive \
                         Maximum of {} it was given (mosquitto 2.0.11 does); reading pauses \
                         while {} forwards are pending",
                        ctx.policy.window,
                        pause_limit(ctx.policy.window)
                    );
                }
                if !ctx.on_publish(publish, gate_limit) {
                    force_reconnect = Some(format!(
                        "the broker sent more than {gate_limit} messages beyond what the \
                         bridge could forward (Receive Maximum {}); reconnecting",
                        ctx.policy.window
                    ));
                }
            }
            Ok(Polled::Ack { pkid, refused }) => ctx.on_ack(pkid, refused, &mut wakes),
            Ok(Polled::SubAck(codes)) => ctx.on_suback(&codes),
            Ok(Polled::Outgoing(Outgoing::Publish(pkid) | Outgoing::AwaitAck(pkid))) => {
                ctx.on_outgoing_publish(pkid, &mut wakes);
            }
            Ok(Polled::Outgoing(Outgoing::Disconnect)) => {
                if ctx.shutdown.is_cancelled() {
                    debug!(client_id = %ctx.conn.client_id, broker = ctx.conn.side.as_str(),
                        "disconnected");
                    break;
                }
            }
            Ok(Polled::Outgoing(Outgoing::PingReq)) => {
                // A stalled session still answers pings: say so once per stall.
                match ctx.conn.stalled() {
                    Some(waited) if !stall_warned => {
                        stall_warned = true;
                        let (broker, client_id, endpoint) = ctx.label();
                        warn!(
                            broker,
                            client_id,
                            endpoint,
                            "the {broker} broker has acknowledged none of the messages the \
                             bridge published for {}s; the session is reported not ready until \
                             it does",
                            waited.as_secs()
                        );
                    }
                    Some(_) => {}
                    None => stall_warned = false,
                }
                ctx.conn.wake_publisher_if_blocked(None);
            }
            Ok(Polled::Outgoing(_)) => ctx.conn.wake_publisher_if_blocked(None),
            Ok(Polled::Other) => {}
            Err(PollError::Done) => break,
            Err(PollError::Lost(mut cause)) => {
                wakes.wake_all();
                ctx.on_lost(&mut eventloop);
                if let Some(hint) = &ctx.setup.hint {
                    cause = format!("{cause} ({hint})");
                }
                if cause.contains("CONNACK reason")
                    && let Some(hint) = ctx.setup.refusal_hint(&cause)
                {
                    cause = format!("{cause}: {hint}");
                }
                if !ctx.failed(cause, &mut backoff).await {
                    break;
                }
                need_connect = true;
                continue;
            }
        }
        if let Some(cause) = force_reconnect {
            wakes.wake_all();
            ctx.on_lost(&mut eventloop);
            if !ctx.failed(cause, &mut backoff).await {
                break;
            }
            need_connect = true;
            continue;
        }
        if subscribe_pending {
            subscribe_pending = !ctx.try_subscribe();
        }
    }
    wakes.wake_all();
    ctx.on_lost(&mut eventloop);
    // Nothing will settle the forwards this connection held.
    let abandoned = {
        let mut outbox = lock(&ctx.conn.outbox);
        outbox.connected = false;
        let mut all: Vec<Pending> = outbox.inflight.drain(..).map(|(_, p)| p).collect();
        all.extend(outbox.resend.drain(..));
        all
    };
    for pending in abandoned {
        pending.settle.abandon(DropReason::Disconnected);
    }
    ctx.conn.wake_publisher.notify_one();
}

impl PollCtx {
    fn label(&self) -> (&'static str, &str, &str) {
        (
            self.conn.side.as_str(),
            self.conn.client_id.as_str(),
            self.conn.endpoint.as_str(),
        )
    }

    /// Records and logs a failed attempt, then waits the backoff. Returns false when the
    /// bridge is shutting down.
    async fn failed(&mut self, cause: String, backoff: &mut Backoff) -> bool {
        let delay = backoff.next_delay();
        let (broker, client_id, endpoint) = self.label();
        warn!(
            broker,
            client_id,
            endpoint,
            retry_in = ?delay,
            "connection to the {broker} broker {endpoint} failed: {cause}"
        );
        self.conn.metrics.failed.inc();
        self.conn.set_status(|status| {
            status.connected = false;
            status.subscribed = false;
            status.last_error = Some(cause);
        });
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    fn try_subscribe(&self) -> bool {
        match self.conn.client.try_subscribe(&self.conn.filters) {
            Ok(()) => true,
            Err(error) => {
                debug!(%error, "subscribe deferred");
                false
            }
        }
    }

    fn on_connack(&mut self, session_present: bool, limits: Limits, reconnect: bool) {
        let (broker, client_id, endpoint) = self.label();
        info!(
            broker,
            client_id,
            endpoint,
            session_present,
            "connected to the {broker} broker {endpoint} as {client_id}"
        );
        if reconnect && !session_present {
            self.conn.metrics.session_lost.inc();
            warn!(
                broker,
                client_id, "the {broker} broker had no session for {client_id}; resubscribing"
            );
        }
        self.conn.gate.reset(true);
        {
            let mut outbox = lock(&self.conn.outbox);
            outbox.connected = true;
            outbox.limits = limits;
        }
        self.conn.metrics.up.set(1);
        let subscribed = self.conn.filters.is_empty();
        self.conn.set_status(|status| {
            status.connected = true;
            status.subscribed = subscribed;
            status.publishes_refused = false;
            if subscribed {
                status.last_error = None;
            }
        });
        self.conn.wake_publisher.notify_one();
    }

    fn on_suback(&self, codes: &[Option<String>]) {
        let refused: Vec<String> = codes
            .iter()
            .zip(&self.conn.filters)
            .filter_map(|(code, filter)| {
                code.as_ref()
                    .map(|reason| format!("{} ({reason})", filter.path))
            })
            .collect();
        let (broker, client_id, endpoint) = self.label();
        if refused.is_empty() {
            debug!(broker, client_id, "subscribed");
            self.conn.set_status(|status| {
                status.subscribed = true;
                status.last_error = None;
            });
        } else {
            let cause = format!(
                "the {broker} broker refused the subscription to {}",
                refused.join(", ")
            );
            error!(broker, client_id, endpoint, "{cause}");
            self.conn.set_status(|status| {
                status.subscribed = false;
                status.last_error = Some(cause);
            });
        }
    }

    /// A received message. Returns false when the gate overflowed.
    fn on_publish(&mut self, mut publish: Publish, gate_limit: usize) -> bool {
        if self.shutdown.is_cancelled() {
            // Neither forwarded nor acknowledged: the broker keeps it in the session.
            return true;
        }
        let received = Instant::now();
        let topic = std::str::from_utf8(&publish.topic).unwrap_or("");
        let matching = self
            .routes
            .iter()
            .filter(|route| route.filter.matches(topic))
            .count();
        let place = if publish.qos == QoS::AtMostOnce {
            None
        } else {
            match self
                .conn
                .gate
                .push(publish.pkid, publish.qos, matching, gate_limit)
            {
                Some(place) => Some(place),
                None => return false,
            }
        };
        if matching == 0 {
            debug!(topic, "message matches no route");
            self.unroutable.drop_unforwarded(DropReason::Unroutable);
            return true;
        }
        let mut properties = publish.properties.take();
        let mut left = matching;
        for route in &self.routes {
            if left == 0 {
                break;
            }
            if !route.filter.matches(topic) {
                continue;
            }
            left -= 1;
            route.metrics.begin();
            if publish.dup {
                route.metrics.duplicate.inc();
            }
            let settle = Settle {
                ticket: place.map(|(generation, seq)| Ticket {
                    gate: Arc::clone(&self.conn.gate),
                    generation,
                    seq,
                }),
                metrics: Arc::clone(&route.metrics),
                spool: None,
            };
            let props = if left == 0 {
                properties.take()
            } else {
                properties.clone()
            };
            let shape = Shape {
                target: route.target.as_deref(),
                qos: route.qos,
                retain: self.policy.retain,
                hop_limit: self.policy.hop_limit,
            };
            let message = match forward::shape(&publish, props, shape, received) {
                Ok(message) => message,
                Err(reason) => {
                    if reason == DropReason::HopLimit {
                        debug!(topic, route = %route.name, "hop limit reached; dropped");
                    }
                    settle.finish(Err(reason));
                    continue;
                }
            };
            let pending = Pending {
                message,
                settle,
                written: false,
            };
            if publish.qos == QoS::AtMostOnce && self.forward_tx.capacity() <= self.reserve {
                pending.settle.finish(Err(DropReason::Busy));
                continue;
            }
            if let Err(error) = self.forward_tx.try_send(pending) {
                let pending = match error {
                    mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                };
                if publish.qos == QoS::AtMostOnce {
                    pending.settle.finish(Err(DropReason::Busy));
                } else {
                    error!(route = %route.name, "forwarding queue full; reconnecting");
                    pending.settle.abandon(DropReason::Overflow);
                    return false;
                }
            }
        }
        true
    }

    fn on_outgoing_publish(&self, pkid: u16, wakes: &mut AckerWakes) {
        let (settled, queued) = {
            let mut outbox = lock(&self.conn.outbox);
            let settled = if pkid != 0 && outbox.inflight.iter().any(|(id, _)| *id == pkid) {
                // `AwaitAck(pkid)`: the next publish collided with `pkid`, which is still in
                // flight. rumqttc stashes it and writes it (`Publish(pkid)`) once that
                // PUBACK has arrived; it stays first in `queued` and is bound then.
                None
            } else {
                match outbox.queued.pop_front() {
                    Some(pending) if pkid == 0 => {
                        outbox.progressed();
                        self.conn.metrics.published.inc();
                        Some(pending)
                    }
                    Some(pending) => {
                        outbox.inflight.push_back((pkid, pending));
                        None
                    }
                    None => {
                        warn!(pkid, "outgoing publish without a queued forward");
                        None
                    }
                }
            };
            (settled, outbox.queued.len())
        };
        if let Some(pending) = settled {
            let latency = pending.message.received.elapsed();
            pending.settle.finish_deferred(Ok(latency), wakes);
        }
        self.conn.wake_publisher_if_blocked(Some(queued));
    }

    fn on_ack(&self, pkid: u16, refused: Option<String>, wakes: &mut AckerWakes) {
        let pending = {
            let mut outbox = lock(&self.conn.outbox);
            let pending = outbox
                .inflight
                .iter()
                .position(|(id, _)| *id == pkid)
                .and_then(|index| outbox.inflight.remove(index))
                .map(|(_, pending)| pending);
            if pending.is_some() {
                outbox.progressed();
            }
            pending
        };
        let Some(pending) = pending else {
            debug!(pkid, "acknowledgement for an unknown packet");
            return;
        };
        if let Some(reason) = refused {
            let (broker, client_id, _) = self.label();
            let cause = format!(
                "the {broker} broker refused a message the bridge published on `{}`: {reason}",
                pending.message.topic,
            );
            warn!(broker, client_id, "{cause}; dropped");
            pending
                .settle
                .finish_deferred(Err(DropReason::Rejected), wakes);
            self.conn.set_status(|status| {
                status.publishes_refused = true;
                status.last_error = Some(cause);
            });
        } else {
            self.conn.metrics.published.inc();
            let latency = pending.message.received.elapsed();
            pending.settle.finish_deferred(Ok(latency), wakes);
            self.conn.set_status(|status| {
                if status.publishes_refused {
                    status.publishes_refused = false;
                    status.last_error = None;
                }
            });
        }
        self.conn.wake_publisher_if_blocked(None);
    }

    /// The broker answered a re-authentication.
    fn on_reauthenticated(&self, outcome: Result<(), String>) {
        let (broker, client_id, _) = self.label();
        match outcome {
            Ok(()) => {
                self.conn.metrics.reauthenticated.inc();
                debug!(broker, client_id, "re-authenticated");
            }
            Err(reason) => {
                self.conn.metrics.reauth_failed.inc();
                let cause = format!(
                    "the {broker} broker refused the new token ({reason}); the session ends when \
                     the current one expires"
                );
                warn!(broker, client_id, "{cause}");
                self.conn
                    .set_status(|status| status.last_error = Some(cause));
            }
        }
    }

    /// The connection is gone: take back what rumqttc would resend on its own, and mark
    /// every unsettled forward for publication on the next connection.
    fn on_lost(&self, eventloop: &mut EventLoop) {
        if let Some(sessions) = &self.setup.sessions {
            sessions.send_replace(None);
        }
        let lost_qos0 = {
            let mut outbox = lock(&self.conn.outbox);
            outbox.connected = false;
            // rumqtt#1056/#1014: a publish stashed on a packet-id collision is never
            // cleared and wedges the client; it is in our resend list anyway.
            eventloop.on_lost();
            let mut all: VecDeque<Pending> = outbox
                .inflight
                .drain(..)
                .map(|(_, mut pending)| {
                    pending.written = true;
                    pending
                })
                .collect();
            all.append(&mut outbox.queued);
            all.append(&mut outbox.resend);
            let (qos0, rest): (Vec<Pending>, Vec<Pending>) = all
                .into_iter()
                .partition(|pending| pending.message.qos == QoS::AtMostOnce);
            outbox.resend = rest.into();
            outbox.waiting_since = None;
            qos0
        };
        for pending in lost_qos0 {
            pending.settle.finish(Err(DropReason::Disconnected));
        }
        self.conn.gate.reset(false);
        self.conn.metrics.up.set(0);
        self.conn.set_status(|status| {
            status.connected = false;
            status.subscribed = false;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The publisher task.

enum Attempt {
    Sent(Pending),
    Full(Pending),
    Dropped(Pending, DropReason),
}

fn attempt(client: &Client, pending: Pending, limits: &Limits) -> Attempt {
    let (qos, retain, properties) = match forward::finish(&pending.message, limits, Instant::now())
    {
        Ok(parts) => parts,
        Err(reason) => return Attempt::Dropped(pending, reason),
    };
    let message = &pending.message;
    match client.try_publish(
        message.topic.as_str(),
        qos,
        retain,
        message.payload.clone(),
        properties,
    ) {
        Ok(()) => Attempt::Sent(pending),
        Err(_) => Attempt::Full(pending),
    }
}

/// Publishes the forwards of the origin connections on this connection, in order.
pub(crate) async fn run_publisher(
    conn: Arc<Conn>,
    mut rx: mpsc::Receiver<Pending>,
    stop: CancellationToken,
) {
    let mut held: Option<Pending> = None;
    let mut dropped: Vec<(Pending, DropReason)> = Vec::new();
    let mut closed = false;
    loop {
        let mut blocked = true;
        {
            let mut outbox = lock(&conn.outbox);
            if outbox.connected {
                blocked = false;
                while let Some(pending) = outbox.resend.pop_front() {
                    match attempt(&conn.client, pending, &outbox.limits) {
                        Attempt::Sent(pending) => {
                            if pending.written {
                                pending.settle.metrics.retried.inc();
                            }
                            outbox.sent(pending);
                        }
                        Attempt::Full(pending) => {
                            outbox.resend.push_front(pending);
                            blocked = true;
                            break;
                        }
                        Attempt::Dropped(pending, reason) => dropped.push((pending, reason)),
                    }
                }
                while !blocked {
                    if held.is_none() && !closed {
                        match rx.try_recv() {
                            Ok(pending) => held = Some(pending),
                            Err(mpsc::error::TryRecvError::Empty) => {}
                            Err(mpsc::error::TryRecvError::Disconnected) => closed = true,
                        }
                    }
                    let Some(pending) = held.take() else { break };
                    match attempt(&conn.client, pending, &outbox.limits) {
                        Attempt::Sent(pending) => outbox.sent(pending),
                        Attempt::Full(pending) => {
                            held = Some(pending);
                            blocked = true;
                        }
                        Attempt::Dropped(pending, reason) => dropped.push((pending, reason)),
                    }
                }
            }
        }
        for (pending, reason) in dropped.drain(..) {
            if reason == DropReason::Oversize {
                warn!(
                    client_id = %conn.client_id,
                    topic = %pending.message.topic,
                    bytes = pending.message.payload.len(),
                    "message larger than the {} broker's maximum packet size; dropped",
                    conn.side.as_str()
                );
            }
            pending.settle.finish(Err(reason));
        }
        if blocked || held.is_some() || closed {
            // The poll task wakes the publisher only while this flag is set: try once more
            // after setting it, in case rumqttc took requests in between.
            if !conn.publisher_blocked.swap(true, Ordering::SeqCst) {
                continue;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = conn.wake_publisher.notified() => {}
            }
            conn.publisher_blocked.store(false, Ordering::SeqCst);
        } else {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = conn.wake_publisher.notified() => {}
                item = rx.recv() => match item {
                    Some(pending) => held = Some(pending),
                    None => closed = true,
                },
            }
        }
    }
    if let Some(pending) = held {
        pending.settle.abandon(DropReason::Disconnected);
    }
    rx.close();
    while let Ok(pending) = rx.try_recv() {
        pending.settle.abandon(DropReason::Disconnected);
    }
}

// ---------------------------------------------------------------------------------------------
// The acker task.

/// Sends the source role's acknowledgements in arrival order.
pub(crate) async fn run_acker(conn: Arc<Conn>, stop: CancellationToken) {
    let mut ready = Vec::new();
    loop {
        conn.gate.busy.store(false, Ordering::Release);
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = conn.gate.wake.notified() => {}
        }
        conn.gate.take_ready(&mut ready);
        for (pkid, qos) in ready.drain(..) {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                result = conn.client.ack(pkid, qos) => if result.is_err() { return },
            }
        }
    }
}
