//! Turning a received PUBLISH into the PUBLISH sent to the other broker.
//!
//! - **Topic**: the route's static target, or the message's own topic.
//! - **QoS**: the lowest of the message's QoS, the route's QoS and the destination's maximum
//!   (1 toward the remote broker — Event Grid has no QoS 2 — and the CONNACK Maximum QoS).
//! - **Properties**: user properties, content type, payload format indicator, correlation data
//!   and response topic are copied; the message expiry interval becomes the *remaining* time
//!   (a message that expired while held is dropped); topic aliases and subscription
//!   identifiers are connection-scoped and never copied.
//! - **Hop count**: the user property [`HOPS_PROPERTY`] is incremented on every forward; a
//!   message that arrives with the limit already reached is dropped (a loop).
//! - **Retain**: kept or cleared per [`RetainPolicy`], and cleared when the destination says
//!   it has no retain support.
//! - **Size**: a message larger than the destination's maximum packet size is dropped before
//!   it is handed to the MQTT client (which would otherwise fail the whole connection).

use std::time::Instant;

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::{Publish, PublishProperties};

use super::metrics::DropReason;

/// The user property that counts how many bridges a message has crossed.
pub const HOPS_PROPERTY: &str = "e4k-hops";

/// What to do with the retain flag of forwarded messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainPolicy {
    /// Forward the flag as received (subscriptions use Retain As Published), like AIO
    /// dataflows' `retain: Keep` and mosquitto bridges.
    #[default]
    Keep,
    /// Forward every message without the retain flag (AIO's `Never`).
    Drop,
}

/// What the destination announced in its CONNACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Maximum Packet Size, when announced.
    pub(crate) max_packet_size: Option<u32>,
    /// Retain Available (true when not announced).
    pub(crate) retain_available: bool,
    /// Maximum QoS.
    pub(crate) max_qos: QoS,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: None,
            retain_available: true,
            max_qos: QoS::ExactlyOnce,
        }
    }
}

/// A message ready to be published on the destination, kept until the destination
/// acknowledges it so that it can be published again after a session loss.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Destination topic.
    pub(crate) topic: String,
    /// QoS before the destination's CONNACK maximum is applied.
    pub(crate) qos: QoS,
    /// Retain flag before the destination's retain support is applied.
    pub(crate) retain: bool,
    /// The payload, shared with the received packet (never copied).
    pub(crate) payload: Bytes,
    /// Properties without the message expiry interval.
    pub(crate) properties: PublishProperties,
    /// The message expiry interval as received, in seconds.
    pub(crate) expiry: Option<u32>,
    /// When the message arrived.
    pub(crate) received: Instant,
}

/// The lower of two QoS levels.
pub(crate) fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

/// Settings that shape every forward of a route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// The route's static target.
    pub(crate) target: Option<&'a str>,
    /// The route's QoS, capped by the destination side.
    pub(crate) qos: QoS,
    /// Retain policy.
    pub(crate) retain: RetainPolicy,
    /// Hop limit.
    pub(crate) hop_limit: u32,
}

/// Builds the message to publish from a received one, whose topic (`topic`, as UTF-8) the
/// caller matched against the route.
///
/// # Errors
///
/// [`DropReason::HopLimit`] when the hop count reached the limit.
pub(crate) fn shape(
    publish: &Publish,
    topic: &str,
    properties: Option<PublishProperties>,
    shape: Shape<'_>,
    received: Instant,
) -> Result<Message, DropReason> {
    let topic = shape.target.unwrap_or(topic).to_owned();
    let mut properties = properties.unwrap_or_default();
    let hops = hop_count(&properties.user_properties);
    if hops >= shape.hop_limit {
        return Err(DropReason::HopLimit);
    }
    properties
        .user_properties
        .retain(|(key, _)| key != HOPS_PROPERTY);
    properties
        .user_properties
        .push((HOPS_PROPERTY.to_owned(), (hops + 1).to_string()));
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    let expiry = properties.message_expiry_interval.take();
    Ok(Message {
        topic,
        qos: min_qos(publish.qos, shape.qos),
        retain: publish.retain && shape.retain == RetainPolicy::Keep,
        payload: publish.payload.clone(),
        properties,
        expiry,
        received,
    })
}

/// The hop count of a message: the last `e4k-hops` user property, 0 when absent or not a
/// number.
pub(crate) fn hop_count(user_properties: &[(String, String)]) -> u32 {
    user_properties
        .iter()
        .rev()
        .find(|(key, _)| key == HOPS_PROPERTY)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The final PUBLISH for the destination's current limits. `now` is asked only for a message
/// with an expiry interval (the clock is not read per forward otherwise).
///
/// # Errors
///
/// [`DropReason::Expired`] when the message expired while held, [`DropReason::Oversize`]
/// when it is larger than the destination's maximum packet size.
pub(crate) fn finish(
    message: &Message,
    limits: &Limits,
    now: impl FnOnce() -> Instant,
) -> Result<(QoS, bool, PublishProperties), DropReason> {
    let mut properties = message.properties.clone();
    if let Some(expiry) = message.expiry {
        let held = now().saturating_duration_since(message.received).as_secs();
        let remaining = u64::from(expiry).saturating_sub(held);
        if remaining == 0 {
            return Err(DropReason::Expired);
        }
        properties.message_expiry_interval = u32::try_from(remaining).ok();
    }
    let qos = min_qos(message.qos, limits.max_qos);
    let retain = message.retain && limits.retain_available;
    if let Some(max) = limits.max_packet_size {
        let size = packet_size(message, qos, &properties);
        if size > max as usize {
            return Err(DropReason::Oversize);
        }
    }
    Ok((qos, retain, properties))
}

/// The encoded size of the PUBLISH packet, packet identifier included (MQTT v5 §3.3),
/// computed without building the packet.
pub(crate) fn packet_size(message: &Message, qos: QoS, properties: &PublishProperties) -> usize {
    let string = |s: &str| 1 + 2 + s.len();
    let mut props = 0;
    if properties.payload_format_indicator.is_some() {
        props += 2;
    }
    if properties.message_expiry_interval.is_some() {
        props += 5;
    }
    if properties.topic_alias.is_some() {
        props += 3;
    }
    props += properties.response_topic.as_deref().map_or(0, string);
    props += properties
        .correlation_data
        .as_ref()
        .map_or(0, |data| 1 + 2 + data.len());
    props += properties.content_type.as_deref().map_or(0, string);
    props += properties
        .user_properties
        .iter()
        .map(|(key, value)| 1 + 2 + key.len() + 2 + value.len())
        .sum::<usize>();
    props += properties
        .subscription_identifiers
        .iter()
        .map(|id| 1 + varint_len(*id))
        .sum::<usize>();
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let remaining =
        2 + message.topic.len() + packet_id + varint_len(props) + props + message.payload.len();
    1 + varint_len(remaining) + remaining
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn received(topic: &str, qos: QoS, props: PublishProperties) -> Publish {
        let mut publish = Publish::new(topic, qos, Bytes::from_static(b"hello"), None);
        publish.properties = Some(props);
        publish.retain = true;
        publish
    }

    fn default_shape() -> Shape<'static> {
        Shape {
            target: None,
            qos: QoS::AtLeastOnce,
            retain: RetainPolicy::Keep,
            hop_limit: 8,
        }
    }

    #[test]
    fn copies_properties_and_counts_hops() {
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(3),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"id-1")),
            user_properties: vec![("a".into(), "b".into()), (HOPS_PROPERTY.into(), "2".into())],
            subscription_identifiers: vec![7],
            content_type: Some("text/plain".into()),
        };
        let publish = received("a/b", QoS::ExactlyOnce, props.clone());
        let now = Instant::now();
        let message = shape(
            &publish,
            "a/b",
            publish.properties.clone(),
            default_shape(),
            now,
        )
        .unwrap();
        assert_eq!(message.topic, "a/b");
        assert_eq!(message.qos, QoS::AtLeastOnce);
        assert!(message.retain);
        assert_eq!(message.expiry, Some(60));
        let (qos, retain, out) = finish(&message, &Limits::default(), || {
            now + Duration::from_secs(5)
        })
        .unwrap();
        assert_eq!(qos, QoS::AtLeastOnce);
        assert!(retain);
        assert_eq!(out.message_expiry_interval, Some(55));
        assert_eq!(out.topic_alias, None);
        assert!(out.subscription_identifiers.is_empty());
        assert_eq!(out.content_type, props.content_type);
        assert_eq!(out.correlation_data, props.correlation_data);
        assert_eq!(out.response_topic, props.response_topic);
        assert_eq!(out.payload_format_indicator, Some(1));
        assert_eq!(
            out.user_properties,
            vec![("a".into(), "b".into()), (HOPS_PROPERTY.into(), "3".into())]
        );
    }

    #[test]
    fn drops_at_the_hop_limit_and_when_expired() {
        let props = PublishProperties {
            user_properties: vec![(HOPS_PROPERTY.into(), "8".into())],
            ..Default::default()
        };
        let publish = received("a", QoS::AtLeastOnce, props);
        let result = shape(
            &publish,
            "a",
            publish.properties.clone(),
            default_shape(),
            Instant::now(),
        );
        assert_eq!(result.unwrap_err(), DropReason::HopLimit);

        let props = PublishProperties {
            message_expiry_interval: Some(2),
            ..Default::default()
        };
        let publish = received("a", QoS::AtLeastOnce, props);
        let then = Instant::now();
        let message = shape(
            &publish,
            "a",
            publish.properties.clone(),
            default_shape(),
            then,
        )
        .unwrap();
        let late = then + Duration::from_secs(2);
        assert_eq!(
            finish(&message, &Limits::default(), || late).unwrap_err(),
            DropReason::Expired
        );
    }

    #[test]
    fn target_retain_policy_and_size() {
        let publish = received("a/b", QoS::AtLeastOnce, PublishProperties::default());
        let shape_drop = Shape {
            target: Some("fixed"),
            retain: RetainPolicy::Drop,
            ..default_shape()
        };
        let message = shape(&publish, "a/b", None, shape_drop, Instant::now()).unwrap();
        assert_eq!(message.topic, "fixed");
        assert!(!message.retain);
        let size = packet_size(&message, QoS::AtLeastOnce, &message.properties);
        let mut reference = Publish::new(
            "fixed",
            QoS::AtLeastOnce,
            message.payload.clone(),
            Some(message.properties.clone()),
        );
        reference.pkid = 1;
        assert_eq!(size, reference.size());
        let limits = Limits {
            max_packet_size: Some(u32::try_from(size).unwrap()),
            ..Limits::default()
        };
        assert!(finish(&message, &limits, Instant::now).is_ok());
        let limits = Limits {
            max_packet_size: Some(u32::try_from(size - 1).unwrap()),
            retain_available: false,
            max_qos: QoS::AtLeastOnce,
        };
        assert_eq!(
            finish(&message, &limits, Instant::now).unwrap_err(),
            DropReason::Oversize
        );
    }
}
