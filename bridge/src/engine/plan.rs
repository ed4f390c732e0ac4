//! Turning the resolved configuration into connections, spool lanes and tasks: which
//! sessions each bridge opens, their MQTT options and credentials, and how tasks are spawned.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::NetworkOptions;
use rumqttc_next::mqttbytes::QoS as MqttQoS;
use rumqttc_next::mqttbytes::v5::{RetainForwardRule, SubscribeFilter as Filter};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::conn::{Conn, Credentials, RouteCtx, Setup, Side};
use super::metrics::Metrics;
use super::tls::ReloadingIdentity;
use super::{LinkRoute, Prepared, RunOptions, Shared, conn, mqtt, spooler, tls, token};
use crate::config::{
    Authentication, BridgeConfig, BrokerConnection, Direction, MemberSessions, MqttVersion, QoS,
    Route, SessionRole, Transport,
};
use crate::error::BridgeError;
use crate::spool::{Spool, SpoolOptions};

/// Spawns a task on `tracker`; if it panics, the failure is recorded and everything stops.
pub(super) fn spawn<F>(
    tracker: &TaskTracker,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
    name: &'static str,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let inner = tokio::spawn(tracing::instrument::WithSubscriber::with_current_subscriber(task));
    let shared = Arc::clone(shared);
    let stop = stop.clone();
    tracker.spawn(async move {
        if let Err(error) = inner.await
            && error.is_panic()
        {
            let reason = error.into_panic();
            let reason = reason
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| reason.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(task = name, %reason, "bridge task panicked; stopping");
            let mut failure = shared
                .failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            failure.get_or_insert(BridgeError::Task {
                task: name.to_owned(),
                reason,
            });
            stop.cancel();
        }
    })
}

pub(super) fn mqtt_qos(qos: QoS) -> MqttQoS {
    match qos {
        QoS::AtMostOnce => MqttQoS::AtMostOnce,
        QoS::AtLeastOnce => MqttQoS::AtLeastOnce,
        QoS::ExactlyOnce => MqttQoS::ExactlyOnce,
    }
}

/// Plans the connections of one connector.
pub(super) struct Plan<'a, 'c> {
    pub(super) config: &'a BridgeConfig,
    pub(super) window: u16,
    pub(super) metrics: &'a Metrics,
    pub(super) options: &'a RunOptions,
    pub(super) conns: &'c mut Vec<Prepared>,
}

impl Plan<'_, '_> {
    /// Adds the connections of instance `instance`: its main session on each broker that
    /// needs one, then its shared-subscription members (each only on its source broker,
    /// publishing through the main session on the other broker).
    pub(super) fn instance(
        &mut self,
        instance: u32,
        implicit_share: bool,
    ) -> Result<(), BridgeError> {
        let config = self.config;
        let main: Vec<LinkRoute<'_>> = config
            .routes
            .iter()
            .filter(|r| r.shared_subscription.is_none())
            .map(|route| LinkRoute {
                route,
                subscription: if implicit_share {
                    format!(
                        "$share/{}-{}/{}",
                        config.client_id_prefix, route.name, route.source
                    )
                } else {
                    route.source.to_string()
                },
                no_local: !implicit_share,
            })
            .collect();
        let members: Vec<(&Route, u32)> = config
            .routes
            .iter()
            .filter(|r| r.shared_subscription.is_some())
            .flat_map(|route| {
                config
                    .shared_members(route, instance)
                    .into_iter()
                    .map(move |member| (route, member))
            })
            .collect();
        let own_sessions = config.member_sessions == MemberSessions::BothBrokers;
        let publishes_to = |side: Side| {
            let source = match side {
                Side::Local => Direction::RemoteToLocal,
                Side::Remote => Direction::LocalToRemote,
            };
            !own_sessions && members.iter().any(|(route, _)| route.direction == source)
        };
        let main_id = config.client_id(instance, SessionRole::Main);
        let main_conn = |plan: &mut Self, side: Side| {
            (!main.is_empty() || publishes_to(side))
                .then(|| plan.push(side, &main_id, &main))
                .transpose()
        };
        let local_main = main_conn(self, Side::Local)?;
        let remote_main = main_conn(self, Side::Remote)?;
        if let (Some(local), Some(remote)) = (local_main, remote_main) {
            self.connect(local, remote);
            self.connect(remote, local);
        }
        for (route, member) in members {
            let role = SessionRole::SharedMember {
                route: &route.name,
                member,
            };
            let id = config.client_id(instance, role);
            let routes = [LinkRoute {
                route,
                subscription: route.subscription_filter(),
                no_local: false,
            }];
            let (side, dest_side, dest) = match route.direction {
                Direction::LocalToRemote => (Side::Local, Side::Remote, remote_main),
                Direction::RemoteToLocal => (Side::Remote, Side::Local, local_main),
            };
            let index = self.push(side, &id, &routes)?;
            // A destination session of the member's own (same client ID, subscribing
            // nothing there), or its instance's main session.
            let dest = if own_sessions {
                Some(self.push(dest_side, &id, &routes)?)
            } else {
                dest
            };
            if let Some(dest) = dest {
                self.connect(index, dest);
            }
        }
        Ok(())
    }

    /// Adds a connection whose source routes are those of `routes` that start on `side`.
    fn push(
        &mut self,
        side: Side,
        client_id: &str,
        routes: &[LinkRoute<'_>],
    ) -> Result<usize, BridgeError> {
        let prepared = prepare_conn(
            self.config,
            side,
            client_id,
            routes,
            self.window,
            self.metrics,
            self.options,
        )?;
        self.conns.push(prepared);
        Ok(self.conns.len() - 1)
    }

    /// Makes `dest` publish what `source` receives, and sizes `dest`'s queue for it: the
    /// source holds at most `gate_limit` unsettled messages, each forwarded once per route.
    fn connect(&mut self, source: usize, dest: usize) {
        let routes = self.conns[source].routes.len();
        self.conns[source].dest = Some(dest);
        if routes > 0 {
            self.conns[dest].reserve += conn::gate_limit(self.window) * routes;
        }
    }
}

pub(super) fn prepare_conn(
    config: &BridgeConfig,
    side: Side,
    client_id: &str,
    routes: &[LinkRoute<'_>],
    window: u16,
    metrics: &Metrics,
    options: &RunOptions,
) -> Result<Prepared, BridgeError> {
    let (connection, source_direction) = match side {
        Side::Local => (&config.local, Direction::LocalToRemote),
        Side::Remote => (&config.remote, Direction::RemoteToLocal),
    };
    let direction = source_direction.as_str();
    let mine: Vec<&LinkRoute<'_>> = routes
        .iter()
        .filter(|r| r.route.direction == source_direction)
        .collect();
    let filters: Vec<Filter> = mine
        .iter()
        .map(|r| Filter {
            path: r.subscription.clone(),
            // QoS 2 is never received: rumqttc cannot resume its PUBREL flow (rumqtt PR #1053).
            qos: mqtt_qos(r.route.qos.min(QoS::AtLeastOnce)),
            nolocal: r.no_local,
            preserve_retain: true,
            retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        })
        .collect();
    let route_ctxs: Vec<Arc<RouteCtx>> = mine
        .iter()
        .map(|r| {
            // Toward the remote broker (Event Grid) QoS 2 becomes 1.
            let qos = match side {
                Side::Local => r.route.qos.min(QoS::AtLeastOnce),
                Side::Remote => r.route.qos,
            };
            Arc::new(RouteCtx {
                name: r.route.name.clone(),
                filter: r.route.source.clone(),
                target: r.route.target.clone(),
                qos: mqtt_qos(qos),
                metrics: metrics.route(&config.name, &r.route.name, direction),
            })
        })
        .collect();
    let unroutable = metrics.route(&config.name, "-", direction);
    let client_error = |reason: String| BridgeError::Client {
        bridge: config.name.clone(),
        side: side.as_str(),
        reason,
    };
    let mqtt = mqtt_options(connection, config.protocol, client_id, window, options)
        .map_err(client_error)?;
    let conn_metrics = metrics.connection(&config.name, side.as_str(), client_id);
    let channel = usize::from(window).clamp(10, 1024);
    let (conn, eventloop) = Conn::new(
        side,
        &config.name,
        connection.endpoint.to_string(),
        mqtt,
        filters,
        conn_metrics,
        channel,
    )
    .map_err(client_error)?;
    Ok(Prepared {
        conn,
        eventloop,
        routes: route_ctxs,
        unroutable,
        setup: setup(connection, options),
        dest: None,
        reserve: 0,
        lane: None,
    })
}

/// Opens the spool and the queue of every destination connection.
pub(super) fn open_lanes(
    options: &SpoolOptions,
    conns: &mut [Prepared],
    metrics: &Metrics,
) -> Result<Spool, BridgeError> {
    let spool = Spool::open(options.clone())?;
    let destinations: Vec<usize> = conns.iter().filter_map(|c| c.dest).collect();
    let mut names = Vec::new();
    for (index, prepared) in conns.iter_mut().enumerate() {
        if !destinations.contains(&index) {
            continue;
        }
        let conn = &prepared.conn;
        let name = format!("{}~{}~{}", conn.bridge, conn.side.as_str(), conn.client_id);
        let direction = match conn.side {
            Side::Remote => Direction::LocalToRemote,
            Side::Local => Direction::RemoteToLocal,
        };
        let lane = spooler::Lane::open(
            &spool,
            name.clone(),
            conn.bridge.clone(),
            direction.as_str(),
            metrics.spool(&name),
        )?;
        names.push(name);
        prepared.lane = Some(lane);
    }
    let origins: Vec<(usize, Vec<Arc<RouteCtx>>)> = conns
        .iter()
        .filter_map(|c| c.dest.map(|d| (d, c.routes.clone())))
        .collect();
    for (dest, routes) in origins {
        if let Some(lane) = conns[dest].lane.as_mut() {
            for route in routes {
                lane.routes
                    .insert(route.name.clone(), Arc::clone(&route.metrics));
            }
        }
    }
    for unused in spool.unused(&names) {
        warn!(
            queue = %unused,
            "spool: queue {unused} belongs to no session of this configuration (a renamed \
             bridge, route or client ID?); its messages stay on disk undelivered \
             (`e4k bridge spool inspect` shows them)"
        );
    }
    info!(
        dir = %options.dir.display(),
        max_bytes = options.max_bytes,
        when_full = options.when_full.as_str(),
        queues = names.len(),
        "spool open"
    );
    Ok(spool)
}

pub(super) fn mqtt_options(
    connection: &BrokerConnection,
    protocol: MqttVersion,
    client_id: &str,
    window: u16,
    options: &RunOptions,
) -> Result<mqtt::Options, String> {
    let session = &connection.session;
    let keep_alive = session.keep_alive.max(Duration::from_secs(5));
    let connect_timeout = options.connect_timeout.as_secs().max(1);
    let port = connection.endpoint.port;
    let host = connection.endpoint.host.clone();
    // Event Grid serves MQTT over WebSocket on `/mqtt`.
    let websocket = connection.transport == Transport::WebSocket;
    let tls = connection.tls.is_some();
    let url = |scheme: &str| format!("{scheme}://{host}:{port}/mqtt");
    // TLS (`Tls`/`Wss`) is set before each connection attempt (see `Setup`).
    match protocol {
        MqttVersion::V5 => {
            let mut mqtt = match (websocket, tls) {
                (false, _) => rumqttc_next::MqttOptions::new(
                    client_id,
                    rumqttc_next::Broker::tcp(host.clone(), port),
                ),
                (true, false) => rumqttc_next::MqttOptions::new(
                    client_id,
                    rumqttc_next::Broker::websocket(url("ws"))
                        .map_err(|error| format!("WebSocket URL {}: {error}", url("ws")))?,
                ),
                // A `wss://` broker needs a TLS configuration from the start: this one trusts
                // nothing and is replaced before the first attempt.
                (true, true) => rumqttc_next::MqttOptions::websocket_with_tls_config(
                    client_id,
                    url("wss"),
                    rumqttc_next::TlsConfiguration::Rustls(
                        tls::placeholder_config().map_err(|error| error.to_string())?,
                    ),
                )
                .map_err(|error| format!("WebSocket URL {}: {error}", url("wss")))?,
            };
            // Acknowledgements and forwards are small packets that gate each other: Nagle's
            // algorithm would hold them back for the peer's delayed ACK (tens of ms).
            let mut network = rumqttc_next::NetworkOptions::new();
            network.set_tcp_nodelay(true);
            network.set_connection_timeout(connect_timeout);
            mqtt.set_keep_alive(u16::try_from(keep_alive.as_secs()).unwrap_or(u16::MAX))
                .set_clean_start(session.clean_start)
                .set_session_expiry_interval(Some(
                    u32::try_from(session.session_expiry.as_secs()).unwrap_or(u32::MAX),
                ))
                .set_max_packet_size(Some(session.max_packet_size.max(1)))
                .set_connect_timeout(Duration::from_secs(connect_timeout))
                .set_network_options(network);
            let mqtt = mqtt::v5_options(mqtt, window);
            mqtt.validate().map_err(|error| error.to_string())?;
            Ok(mqtt::Options::V5(Box::new(mqtt)))
        }
        MqttVersion::V3 => {
            let mut network = NetworkOptions::new();
            network.set_tcp_nodelay(true);
            network.set_connection_timeout(connect_timeout);
            // rumqttc 0.25 takes the WebSocket URL as the host.
            let host = match (websocket, tls) {
                (false, _) => host.clone(),
                (true, false) => url("ws"),
                (true, true) => url("wss"),
            };
            // MQTT 3.1.1 has no session expiry (a persistent session lives as long as the
            // broker keeps it), no Receive Maximum (the broker's own in-flight setting applies;
            // the gate's read pause bounds what the bridge holds) and no Maximum Packet Size
            // in CONNACK: the configured maximum is assumed for the broker too.
            let max_packet = usize::try_from(session.max_packet_size).unwrap_or(usize::MAX);
            let mut mqtt = rumqttc::MqttOptions::new(client_id, host, port);
            mqtt.set_keep_alive(keep_alive)
                .set_clean_session(session.clean_start)
                .set_max_packet_size(max_packet, max_packet)
                .set_inflight(window)
                .set_manual_acks(true);
            if websocket && !tls {
                mqtt.set_transport(rumqttc::Transport::Ws);
            }
            Ok(mqtt::Options::V3(
                Box::new(mqtt),
                network,
                session.max_packet_size,
            ))
        }
    }
}

pub(super) fn setup(connection: &BrokerConnection, options: &RunOptions) -> Setup {
    let identity = match &connection.authentication {
        Authentication::X509(files) => Some(Arc::new(ReloadingIdentity::new(files.clone()))),
        _ => None,
    };
    let credentials = match &connection.authentication {
        Authentication::ServiceAccountToken { token_file } => {
            Credentials::Token(token_file.clone())
        }
        Authentication::UsernamePassword {
            username_file,
            password_file,
            ..
        } => Credentials::UserPass {
            username: username_file.clone(),
            password: password_file.clone(),
        },
        Authentication::EntraToken { audience } => {
            Credentials::Jwt(Arc::new(token::TokenSource::Entra {
                audience: audience.clone(),
                credential: options.entra_credential.clone(),
            }))
        }
        Authentication::JwtFile { token_file } => {
            Credentials::Jwt(Arc::new(token::TokenSource::File(token_file.clone())))
        }
        Authentication::X509(_) | Authentication::Anonymous => Credentials::None,
    };
    Setup::new(
        connection.tls.clone(),
        identity,
        credentials,
        connection.transport == Transport::WebSocket,
    )
}
