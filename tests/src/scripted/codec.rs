//! The packets the scripted broker reads and writes, in MQTT 5 or 3.1.1, through rumqttc's own
//! codecs.

use super::*;

/// A packet from the client, whatever its version.
#[derive(Debug)]
pub(super) enum In {
    Connect {
        client_id: String,
        authentication: Option<(String, Bytes)>,
    },
    Publish(Publish),
    PubRel(u16),
    PingReq,
    Subscribe {
        pkid: u16,
        granted: Vec<QoS>,
    },
    Unsubscribe {
        pkid: u16,
        filters: usize,
    },
    Disconnect(String),
    /// Acknowledgements of publishes the broker never sends, AUTH: ignored.
    Other,
}

/// The parts of a PUBLISH the broker uses.
#[derive(Debug)]
pub(super) struct Publish {
    pub(super) pkid: u16,
    pub(super) qos: QoS,
    pub(super) dup: bool,
    pub(super) topic: String,
    pub(super) payload: Bytes,
}

/// A packet to the client, written in the connection's version.
#[derive(Debug)]
pub(super) enum Out {
    /// A CONNACK; MQTT 5 echoes the CONNECT's authentication method, as brokers that accept
    /// enhanced authentication must.
    ConnAck {
        session_present: bool,
        authentication_method: Option<String>,
    },
    PubAck(u16),
    PubRec(u16),
    PubComp(u16),
    PingResp,
    SubAck {
        pkid: u16,
        granted: Vec<QoS>,
    },
    UnsubAck {
        pkid: u16,
        filters: usize,
    },
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// The protocol level of the CONNECT at the start of `buf`, once its first bytes are there
/// (fixed header, remaining length, protocol name "MQTT", level).
pub(super) fn protocol_level(buf: &[u8]) -> Option<u8> {
    let mut offset = 1;
    // The remaining length: up to four bytes, the high bit meaning "more".
    loop {
        let byte = *buf.get(offset)?;
        offset += 1;
        if byte & 0x80 == 0 || offset > 4 {
            break;
        }
    }
    // The protocol name: a 2-byte length and "MQTT".
    buf.get(offset + 6).copied()
}

/// The next complete packet in `buf`, if any, in `version`.
pub(super) fn parse(buf: &mut BytesMut, version: MqttVersion) -> io::Result<Option<In>> {
    match version {
        MqttVersion::V5 => match Packet::read(buf, None) {
            Ok(packet) => Ok(Some(from_v5(packet))),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(error) => Err(invalid(error)),
        },
        MqttVersion::V3 => match v4::Packet::read(buf, usize::MAX) {
            Ok(packet) => Ok(Some(from_v311(packet))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(error) => Err(invalid(error)),
        },
    }
}

fn from_v5(packet: Packet) -> In {
    match packet {
        Packet::Connect(connect, _, _) => In::Connect {
            client_id: connect.client_id,
            authentication: connect.properties.and_then(|p| {
                p.authentication_method
                    .map(|method| (method, p.authentication_data.unwrap_or_default()))
            }),
        },
        Packet::Publish(publish) => In::Publish(Publish {
            pkid: publish.pkid,
            qos: publish.qos,
            dup: publish.dup,
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            payload: publish.payload,
        }),
        Packet::PubRel(pubrel) => In::PubRel(pubrel.pkid),
        Packet::PingReq(_) => In::PingReq,
        Packet::Subscribe(subscribe) => In::Subscribe {
            pkid: subscribe.pkid,
            granted: subscribe.filters.iter().map(|filter| filter.qos).collect(),
        },
        Packet::Unsubscribe(unsubscribe) => In::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.filters.len(),
        },
        Packet::Disconnect(disconnect) => In::Disconnect(format!("{:?}", disconnect.reason_code)),
        _ => In::Other,
    }
}

fn from_v311(packet: v4::Packet) -> In {
    let qos = |qos: rumqttc::mqttbytes::QoS| match qos {
        rumqttc::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    };
    match packet {
        v4::Packet::Connect(connect) => In::Connect {
            client_id: connect.client_id,
            authentication: None,
        },
        v4::Packet::Publish(publish) => In::Publish(Publish {
            pkid: publish.pkid,
            qos: qos(publish.qos),
            dup: publish.dup,
            topic: publish.topic,
            payload: publish.payload,
        }),
        v4::Packet::PubRel(pubrel) => In::PubRel(pubrel.pkid),
        v4::Packet::PingReq => In::PingReq,
        v4::Packet::Subscribe(subscribe) => In::Subscribe {
            pkid: subscribe.pkid,
            granted: subscribe
                .filters
                .iter()
                .map(|filter| qos(filter.qos))
                .collect(),
        },
        v4::Packet::Unsubscribe(unsubscribe) => In::Unsubscribe {
            pkid: unsubscribe.pkid,
            filters: unsubscribe.topics.len(),
        },
        v4::Packet::Disconnect => In::Disconnect("MQTT 3.1.1".to_owned()),
        _ => In::Other,
    }
}

/// Writes `packet` in `version`; `receive_maximum` goes into an MQTT 5 CONNACK.
pub(super) fn write(
    packet: &Out,
    version: MqttVersion,
    receive_maximum: u16,
    out: &mut BytesMut,
) -> io::Result<()> {
    match version {
        MqttVersion::V5 => to_v5(packet, receive_maximum)
            .write(out, None)
            .map(drop)
            .map_err(invalid),
        MqttVersion::V3 => to_v311(packet)
            .write(out, usize::MAX)
            .map(drop)
            .map_err(invalid),
    }
}

fn to_v5(packet: &Out, receive_maximum: u16) -> Packet {
    match packet {
        Out::ConnAck {
            session_present,
            authentication_method,
        } => {
            let mut ack = connack(*session_present, receive_maximum);
            if let Some(props) = ack.properties.as_mut() {
                props
                    .authentication_method
                    .clone_from(authentication_method);
            }
            Packet::ConnAck(ack)
        }
        Out::PubAck(pkid) => Packet::PubAck(PubAck::new(*pkid, None)),
        Out::PubRec(pkid) => Packet::PubRec(PubRec::new(*pkid, None)),
        Out::PubComp(pkid) => Packet::PubComp(PubComp::new(*pkid, None)),
        Out::PingResp => Packet::PingResp(PingResp),
        Out::SubAck { pkid, granted } => Packet::SubAck(SubAck {
            pkid: *pkid,
            return_codes: granted
                .iter()
                .map(|qos| SubscribeReasonCode::Success(*qos))
                .collect(),
            properties: None,
        }),
        Out::UnsubAck { pkid, filters } => Packet::UnsubAck(UnsubAck {
            pkid: *pkid,
            reasons: vec![UnsubAckReason::Success; *filters],
            properties: None,
        }),
    }
}

fn to_v311(packet: &Out) -> v4::Packet {
    let qos = |qos: QoS| match qos {
        QoS::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    };
    match packet {
        Out::ConnAck {
            session_present, ..
        } => v4::Packet::ConnAck(v4::ConnAck::new(
            v4::ConnectReturnCode::Success,
            *session_present,
        )),
        Out::PubAck(pkid) => v4::Packet::PubAck(v4::PubAck::new(*pkid)),
        Out::PubRec(pkid) => v4::Packet::PubRec(v4::PubRec::new(*pkid)),
        Out::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp::new(*pkid)),
        Out::PingResp => v4::Packet::PingResp,
        Out::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck::new(
            *pkid,
            granted
                .iter()
                .map(|q| v4::SubscribeReasonCode::Success(qos(*q)))
                .collect(),
        )),
        Out::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck::new(*pkid)),
    }
}

/// An MQTT 5 CONNACK with the scripted flag and Receive Maximum.
fn connack(session_present: bool, receive_maximum: u16) -> ConnAck {
    ConnAck {
        session_present,
        code: ConnectReturnCode::Success,
        properties: Some(ConnAckProperties {
            session_expiry_interval: None,
            receive_max: Some(receive_maximum),
            max_qos: None,
            retain_available: None,
            max_packet_size: None,
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        }),
    }
}
