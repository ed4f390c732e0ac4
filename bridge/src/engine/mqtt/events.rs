//! Translating the two clients' events (rumqttc-v5-next for MQTT 5, rumqttc for 3.1.1) into
//! the engine's [`Polled`](super::Polled), and their QoS types into each other.

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::{
    ConnAck, PubAckReason, PubRecReason, Publish, SubscribeReasonCode,
};

use super::{Outgoing, Polled};
use crate::engine::forward::Limits;

pub(super) fn v5_event(event: rumqttc_next::Event) -> Polled {
    use rumqttc_next::{AuthEvent, AuthExchangeKind, Event, Incoming};
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
        Event::Outgoing(outgoing) => {
            use rumqttc_next::Outgoing as O;
            Polled::Outgoing(match outgoing {
                O::Publish(pkid) => Outgoing::Publish(pkid),
                O::AwaitAck(pkid) => Outgoing::AwaitAck(pkid),
                O::Disconnect => Outgoing::Disconnect,
                O::PingReq => Outgoing::PingReq,
                _ => Outgoing::Other,
            })
        }
        Event::Auth(AuthEvent::Succeeded {
            kind: AuthExchangeKind::Reauthentication,
            ..
        }) => Polled::Reauthenticated(Ok(())),
        Event::Auth(AuthEvent::Failed {
            kind: AuthExchangeKind::Reauthentication,
            reason,
            ..
        }) => Polled::Reauthenticated(Err(format!("{reason:?}"))),
        Event::Incoming(_) | Event::Auth(_) => Polled::Other,
    }
}

pub(super) fn v5_limits(ack: &ConnAck) -> Limits {
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

pub(super) fn v3_event(event: rumqttc::Event, max_packet_size: u32) -> Polled {
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
        Event::Outgoing(outgoing) => Polled::Outgoing(match outgoing {
            rumqttc::Outgoing::Publish(pkid) => Outgoing::Publish(pkid),
            rumqttc::Outgoing::AwaitAck(pkid) => Outgoing::AwaitAck(pkid),
            rumqttc::Outgoing::Disconnect => Outgoing::Disconnect,
            rumqttc::Outgoing::PingReq => Outgoing::PingReq,
            _ => Outgoing::Other,
        }),
        Event::Incoming(_) => Polled::Other,
    }
}

pub(super) fn v3_qos(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

pub(super) fn v5_qos(qos: rumqttc::QoS) -> QoS {
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
