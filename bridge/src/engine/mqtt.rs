//! One MQTT client interface over rumqttc's two clients: MQTT 5 (`rumqttc::v5`) and MQTT
//! 3.1.1 (`rumqttc`'s root module, "v4" in its terms), chosen by the connector's `protocol`.
//!
//! The engine is written against MQTT 5 types: an MQTT 3.1.1 event is translated into its
//! MQTT 5 equivalent (a PUBLISH without properties, a CONNACK without limits), and what MQTT
//! 3.1.1 cannot carry is left out on the way back (message properties, No Local,
//! enhanced authentication). Both clients get the same workarounds after a connection loss
//! (see [`EventLoop::on_lost`]).

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, PubAckReason, PubRecReason, Publish, PublishProperties, SubscribeReasonCode,
};
use rumqttc::{Outgoing, Transport};

use super::describe;
use super::forward::Limits;

/// Settings of a session before it connects.
pub(crate) enum Options {
    /// MQTT 5.
    V5(Box<rumqttc::v5::MqttOptions>),
    /// MQTT 3.1.1, with the limit on outgoing packets (MQTT 3.1.1 has no CONNACK to tell it).
    V3(Box<rumqttc::MqttOptions>, rumqttc::NetworkOptions, u32),
}

impl Options {
    /// The client ID.
    pub(crate) fn client_id(&self) -> String {
        match self {
            Options::V5(options) => options.client_id(),
            Options::V3(options, ..) => options.client_id(),
        }
    }

    /// The keep-alive interval.
    pub(crate) fn keep_alive(&self) -> Duration {
        match self {
            Options::V5(options) => options.keep_alive(),
            Options::V3(options, ..) => options.keep_alive(),
        }
    }
}

/// Creates a client and its event loop; `cap` bounds the request channel.
pub(crate) fn client(options: Options, cap: usize) -> (Client, EventLoop) {
    match options {
        Options::V5(options) => {
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(*options, cap);
            (Client::V5(client), EventLoop::V5(Box::new(eventloop)))
        }
        Options::V3(options, network, max_packet_size) => {
            let (client, mut eventloop) = rumqttc::AsyncClient::new(*options, cap);
            eventloop.set_network_options(network);
            (
                Client::V3(client),
                EventLoop::V3(Box::new(eventloop), max_packet_size),
            )
        }
    }
}

/// The handle that sends requests to a session's event loop.
#[derive(Clone)]
pub(crate) enum Client {
    /// MQTT 5.
    V5(rumqttc::v5::AsyncClient),
    /// MQTT 3.1.1.
    V3(rumqttc::AsyncClient),
}

/// The request channel is full (or closed).
#[derive(Debug)]
pub(crate) struct Full;

impl Client {
    /// Queues a PUBLISH without waiting. MQTT 3.1.1 drops `properties`.
    pub(crate) fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        properties: PublishProperties,
    ) -> Result<(), Full> {
        match self {
            Client::V5(client) => client
                .try_publish_with_properties(topic, qos, retain, payload, properties)
                .map_err(|_| Full),
            // rumqttc's 3.1.1 client has no non-blocking publish of `Bytes`: the payload is
            // copied once here.
            Client::V3(client) => client
                .try_publish(topic, v3_qos(qos), retain, payload.to_vec())
                .map_err(|_| Full),
        }
    }

    /// Sends the acknowledgement of a received message (waits for room in the channel).
    pub(crate) async fn ack(&self, pkid: u16, qos: QoS) -> Result<(), Full> {
        match self {
            Client::V5(client) => {
                let publish = Publish {
                    qos,
                    pkid,
                    ..Publish::default()
                };
                client.ack(&publish).await.map_err(|_| Full)
            }
            Client::V3(client) => {
                let mut publish = rumqttc::Publish::new("", v3_qos(qos), Vec::new());
                publish.pkid = pkid;
                client.ack(&publish).await.map_err(|_| Full)
            }
        }
    }

    /// Queues a SUBSCRIBE for `filters` without waiting. MQTT 3.1.1 keeps only each filter's
    /// path and QoS.
    pub(crate) fn try_subscribe(&self, filters: &[Filter]) -> Result<(), String> {
        match self {
            Client::V5(client) => client
                .try_subscribe_many(filters.iter().cloned())
                .map_err(|error| error.to_string()),
            Client::V3(client) => client
                .try_subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.path.clone(), v3_qos(f.qos))),
                )
                .map_err(|error| error.to_string()),
        }
    }

    /// Queues a DISCONNECT without waiting.
    pub(crate) fn try_disconnect(&self) -> Result<(), Full> {
        match self {
            Client::V5(client) => client.try_disconnect().map_err(|_| Full),
            Client::V3(client) => client.try_disconnect().map_err(|_| Full),
        }
    }
}

/// What one poll of the event loop produced, in MQTT 5 terms.
#[derive(Debug)]
pub(crate) enum Polled {
    /// Connected.
    ConnAck {
        /// Whether the broker resumed the session.
        session_present: bool,
        /// What the broker allows the bridge to publish.
        limits: Limits,
    },
    /// A message.
    Publish(Publish),
    /// A PUBACK or PUBREC; `refused` is the reason code when it is a refusal.
    Ack { pkid: u16, refused: Option<String> },
    /// A SUBACK: per filter, `None` when granted, the reason when refused.
    SubAck(Vec<Option<String>>),
    /// Something was written.
    Outgoing(Outgoing),
    /// Anything else.
    Other,
}

/// Why polling stopped.
#[derive(Debug)]
pub(crate) enum PollError {
    /// Every client handle is gone.
    Done,
    /// The connection failed or was lost, described for an operator.
    Lost(String),
}

/// A session's event loop.
pub(crate) enum EventLoop {
    /// MQTT 5.
    V5(Box<rumqttc::v5::EventLoop>),
    /// MQTT 3.1.1, with the broker's assumed maximum packet size.
    V3(Box<rumqttc::EventLoop>, u32),
}

impl EventLoop {
    /// Connects when needed and returns the next event.
    pub(crate) async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            EventLoop::V5(eventloop) => match eventloop.poll().await {
                Ok(event) => Ok(v5_event(event)),
                Err(rumqttc::v5::ConnectionError::RequestsDone) => Err(PollError::Done),
                Err(error) => Err(PollError::Lost(describe::connection_error(&error))),
            },
            EventLoop::V3(eventloop, max_packet_size) => match eventloop.poll().await {
                Ok(event) => Ok(v3_event(event, *max_packet_size)),
                Err(rumqttc::ConnectionError::RequestsDone) => Err(PollError::Done),
                Err(error) => Err(PollError::Lost(describe::connection_error_v3(&error))),
            },
        }
    }

    /// Whether events of the last network read are still waiting to be returned by
    /// [`poll`](Self::poll) (which then returns without reading).
    pub(crate) fn has_buffered_events(&self) -> bool {
        match self {
            EventLoop::V5(eventloop) => !eventloop.state.events.is_empty(),
            EventLoop::V3(eventloop, _) => !eventloop.state.events.is_empty(),
        }
    }

    /// Sets the transport (TLS configuration) for the next connection.
    pub(crate) fn set_transport(&mut self, transport: Transport) {
        match self {
            EventLoop::V5(eventloop) => {
                eventloop.options.set_transport(transport);
            }
            EventLoop::V3(eventloop, _) => {
                eventloop.mqtt_options.set_transport(transport);
            }
        }
    }

    /// Sets the username and password for the next connection.
    pub(crate) fn set_credentials(&mut self, username: String, password: String) {
        match self {
            EventLoop::V5(eventloop) => {
                eventloop.options.set_credentials(username, password);
            }
            EventLoop::V3(eventloop, _) => {
                eventloop.mqtt_options.set_credentials(username, password);
            }
        }
    }

    /// Sets (or clears) MQTT 5 enhanced authentication for the next connection. MQTT 3.1.1
    /// has none: the configuration warns about it, and the session connects without it.
    pub(crate) fn set_authentication(&mut self, method: Option<String>, data: Option<Bytes>) {
        if let EventLoop::V5(eventloop) = self {
            eventloop.options.set_authentication_method(method);
            eventloop.options.set_authentication_data(data);
        }
    }

    /// The connection is gone: drops what rumqttc would resend on its own (the engine resends
    /// its unsettled forwards itself) and clears a publish stashed on a packet-id collision,
    /// which rumqttc never clears and which would wedge the client for good
    /// (rumqtt#1056/#1014).
    pub(crate) fn on_lost(&mut self) {
        match self {
            EventLoop::V5(eventloop) => {
                // Moves what is still in the request channel to `pending` so that nothing
                // published before this point reaches the next connection behind our back.
                eventloop.clean();
                eventloop
                    .pending
                    .retain(|request| matches!(request, rumqttc::v5::Request::PubRel(_)));
                eventloop.state.collision = None;
            }
            EventLoop::V3(eventloop, _) => {
                eventloop.clean();
                eventloop
                    .pending
                    .retain(|request| matches!(request, rumqttc::Request::PubRel(_)));
                eventloop.state.collision = None;
            }
        }
    }
}

fn v5_event(event: rumqttc::v5::Event) -> Polled {
    use rumqttc::v5::{Event, Incoming};
    match event {
        Event::Incoming(Incoming::ConnAck(ack)) => Polled::ConnAck {
            session_present: ack.session_present,
            limits: v5_limits(&ack),
        },
        Event::Incoming(Incoming::Publish(publish)) => Polled::Publish(publish),
        Event::Incoming(Incoming::PubAck(ack)) => Polled::Ack {
            pkid: ack.pkid,
            refused: (!matches!(
                ack.reason,
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers
            ))
            .then(|| format!("{:?}", ack.reason)),
        },
        Event::Incoming(Incoming::PubRec(rec)) => Polled::Ack {
            pkid: rec.pkid,
            refused: (!matches!(
                rec.reason,
                PubRecReason::Success | PubRecReason::NoMatchingSubscribers
            ))
            .then(|| format!("{:?}", rec.reason)),
        },
        Event::Incoming(Incoming::SubAck(suback)) => Polled::SubAck(
            suback
                .return_codes
                .iter()
                .map(|code| {
                    (!matches!(code, SubscribeReasonCode::Success(_))).then(|| format!("{code:?}"))
                })
                .collect(),
        ),
        Event::Outgoing(outgoing) => Polled::Outgoing(outgoing),
        Event::Incoming(_) => Polled::Other,
    }
}

fn v5_limits(ack: &ConnAck) -> Limits {
    let props = ack.properties.as_ref();
    Limits {
        max_packet_size: props.and_then(|p| p.max_packet_size),
        retain_available: props.and_then(|p| p.retain_available) != Some(0),
        max_qos: match props.and_then(|p| p.max_qos) {
            Some(0) => QoS::AtMostOnce,
            Some(1) => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        },
    }
}

fn v3_event(event: rumqttc::Event, max_packet_size: u32) -> Polled {
    use rumqttc::{Event, Packet};
    match event {
        Event::Incoming(Packet::ConnAck(ack)) => Polled::ConnAck {
            session_present: ack.session_present,
            limits: Limits {
                max_packet_size: Some(max_packet_size),
                ..Limits::default()
            },
        },
        Event::Incoming(Packet::Publish(publish)) => Polled::Publish(Publish {
            dup: publish.dup,
            qos: v5_qos(publish.qos),
            retain: publish.retain,
            topic: Bytes::from(publish.topic),
            pkid: publish.pkid,
            payload: publish.payload,
            properties: None,
        }),
        // MQTT 3.1.1 acknowledgements carry no reason: they always mean success.
        Event::Incoming(Packet::PubAck(ack)) => Polled::Ack {
            pkid: ack.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubRec(rec)) => Polled::Ack {
            pkid: rec.pkid,
            refused: None,
        },
        Event::Incoming(Packet::SubAck(suback)) => Polled::SubAck(
            suback
                .return_codes
                .iter()
                .map(|code| match code {
                    rumqttc::SubscribeReasonCode::Success(_) => None,
                    rumqttc::SubscribeReasonCode::Failure => Some("Failure".to_owned()),
                })
                .collect(),
        ),
        Event::Outgoing(outgoing) => Polled::Outgoing(outgoing),
        Event::Incoming(_) => Polled::Other,
    }
}

fn v3_qos(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(qos: rumqttc::QoS) -> QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_publish_becomes_a_v5_publish_without_properties() {
        let mut publish = rumqttc::Publish::new("a/b", rumqttc::QoS::AtLeastOnce, b"x".to_vec());
        publish.pkid = 7;
        publish.dup = true;
        publish.retain = true;
        let Polled::Publish(p) = v3_event(
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)),
            1024,
        ) else {
            panic!("not a publish");
        };
        assert_eq!(&p.topic[..], b"a/b");
        assert_eq!(p.pkid, 7);
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert!(p.dup && p.retain && p.properties.is_none());
        assert_eq!(&p.payload[..], b"x");
    }

    #[test]
    fn v3_connack_limits_packets_to_the_configured_size() {
        let ack = rumqttc::ConnAck::new(rumqttc::ConnectReturnCode::Success, true);
        let Polled::ConnAck {
            session_present,
            limits,
        } = v3_event(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)), 512)
        else {
            panic!("not a connack");
        };
        assert!(session_present);
        assert_eq!(limits.max_packet_size, Some(512));
        assert!(limits.retain_available);
    }

    #[test]
    fn v3_suback_failures_are_reported_per_filter() {
        let suback = rumqttc::SubAck::new(
            1,
            vec![
                rumqttc::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce),
                rumqttc::SubscribeReasonCode::Failure,
            ],
        );
        let Polled::SubAck(codes) =
            v3_event(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(suback)), 1)
        else {
            panic!("not a suback");
        };
        assert_eq!(codes, vec![None, Some("Failure".to_owned())]);
    }
}
