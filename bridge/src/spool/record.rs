//! The on-disk record format of spool segments.
//!
//! A segment file starts with the 12-byte [`FILE_MAGIC`] (`E4KSPOOL` and a little-endian
//! format version), followed by records:
//!
//! ```text
//! [body length: u32 LE] [crc32 of the length bytes: u32 LE] [crc32 of the body: u32 LE] [body]
//! body = [kind: u8] [seq: u64 LE] ...
//!   kind 1, a message: [received, ms since the Unix epoch: u64] [route] [topic] [qos: u8]
//!          [flags: u8] [expiry: u32]? [payload format: u8]? [response topic]?
//!          [correlation data]? [content type]? [user property count: u32] ([key] [value])*
//!          [payload]
//!   kind 2, an acknowledgement marker: every message with a lower seq is settled.
//! strings and byte strings: [length: u32 LE] [bytes]
//! ```
//!
//! The header carries its own checksum so that a damaged length is told apart from a torn
//! write (see [`super::segment`]).

use bytes::Bytes;
use rumqttc_next::mqttbytes::QoS;
use rumqttc_next::mqttbytes::v5::PublishProperties;

/// The start of every segment file: magic and format version 1.
pub(crate) const FILE_MAGIC: [u8; 12] = *b"E4KSPOOL\x01\x00\x00\x00";
/// Bytes of a record header.
pub(crate) const HEADER: usize = 12;
/// Bodies larger than this are refused as corrupt (MQTT packets are at most 256 MiB).
pub(crate) const MAX_BODY: u32 = 260 * 1024 * 1024;

const KIND_MESSAGE: u8 = 1;
const KIND_ACK: u8 = 2;

const F_RETAIN: u8 = 1;
const F_EXPIRY: u8 = 1 << 1;
const F_FORMAT: u8 = 1 << 2;
const F_RESPONSE: u8 = 1 << 3;
const F_CORRELATION: u8 = 1 << 4;
const F_CONTENT_TYPE: u8 = 1 << 5;

/// A spooled message: what the destination needs to publish it, and the route it came by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpooledMessage {
    /// The route's name (for metrics and `spool inspect`).
    pub(crate) route: String,
    /// Destination topic.
    pub(crate) topic: String,
    /// QoS before the destination's maximum is applied.
    pub(crate) qos: QoS,
    /// Retain flag.
    pub(crate) retain: bool,
    /// The payload.
    pub(crate) payload: Bytes,
    /// Properties, without the message expiry interval.
    pub(crate) properties: PublishProperties,
    /// The message expiry interval as received, seconds.
    pub(crate) expiry: Option<u32>,
    /// When the bridge received it, milliseconds since the Unix epoch.
    pub(crate) received_ms: u64,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a marker is rare and short-lived
pub(crate) enum Record {
    /// A message with its sequence number.
    Message(u64, SpooledMessage),
    /// Every message below this sequence number is settled.
    Ack(u64),
}

/// What the spool needs of a record without decoding the message (for `spool inspect` and
/// recovery): its kind, seq, route, receive time and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The sequence number (for a marker, the floor).
    pub(crate) seq: u64,
    /// `Some((route, received_ms))` for a message, `None` for a marker.
    pub(crate) message: Option<(String, u64)>,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a framed record to `out`.
fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    body(out);
    let len = u32::try_from(out.len() - start - HEADER).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    let body_crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len_bytes);
    out[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&body_crc.to_le_bytes());
}

/// Appends the record of message `seq` to `out`.
pub(crate) fn encode_message(out: &mut Vec<u8>, seq: u64, m: &SpooledMessage) {
    frame(out, |b| {
        b.push(KIND_MESSAGE);
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&m.received_ms.to_le_bytes());
        put_bytes(b, m.route.as_bytes());
        put_bytes(b, m.topic.as_bytes());
        b.push(m.qos as u8);
        let p = &m.properties;
        let mut flags = 0;
        if m.retain {
            flags |= F_RETAIN;
        }
        if m.expiry.is_some() {
            flags |= F_EXPIRY;
        }
        if p.payload_format_indicator.is_some() {
            flags |= F_FORMAT;
        }
        if p.response_topic.is_some() {
            flags |= F_RESPONSE;
        }
        if p.correlation_data.is_some() {
            flags |= F_CORRELATION;
        }
        if p.content_type.is_some() {
            flags |= F_CONTENT_TYPE;
        }
        b.push(flags);
        if let Some(expiry) = m.expiry {
            b.extend_from_slice(&expiry.to_le_bytes());
        }
        if let Some(format) = p.payload_format_indicator {
            b.push(format);
        }
        if let Some(topic) = &p.response_topic {
            put_bytes(b, topic.as_bytes());
        }
        if let Some(data) = &p.correlation_data {
            put_bytes(b, data);
        }
        if let Some(content_type) = &p.content_type {
            put_bytes(b, content_type.as_bytes());
        }
        let count = u32::try_from(p.user_properties.len()).unwrap_or(u32::MAX);
        b.extend_from_slice(&count.to_le_bytes());
        for (key, value) in &p.user_properties {
            put_bytes(b, key.as_bytes());
            put_bytes(b, value.as_bytes());
        }
        put_bytes(b, &m.payload);
    });
}

/// Appends an acknowledgement marker to `out`.
pub(crate) fn encode_ack(out: &mut Vec<u8>, floor: u64) {
    frame(out, |b| {
        b.push(KIND_ACK);
        b.extend_from_slice(&floor.to_le_bytes());
    });
}

/// How a record header reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A sound header: the body length and the body's checksum.
    Sound { len: u32, crc: u32 },
    /// The header's own checksum does not match (or the length is absurd).
    Damaged,
}

/// Reads a 12-byte header.
pub(crate) fn header(bytes: &[u8; HEADER]) -> Header {
    let len_bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let len = u32::from_le_bytes(len_bytes);
    let len_crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32fast::hash(&len_bytes) != len_crc || !(9..=MAX_BODY).contains(&len) {
        return Header::Damaged;
    }
    Header::Sound { len, crc }
}

/// A cursor over a record body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record body ends early".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a string is not UTF-8".to_owned())
    }
}

/// Decodes a body whose checksum matched.
///
/// # Errors
/// A description of what is malformed.
pub(crate) fn decode(body: &[u8]) -> Result<Record, String> {
    let mut b = Body(body);
    let kind = b.u8()?;
    let seq = b.u64()?;
    match kind {
        KIND_ACK => Ok(Record::Ack(seq)),
        KIND_MESSAGE => {
            let received_ms = b.u64()?;
            let route = b.string()?;
            let topic = b.string()?;
            let qos = match b.u8()? {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                2 => QoS::ExactlyOnce,
                other => return Err(format!("unknown QoS {other}")),
            };
            let flags = b.u8()?;
            let expiry = (flags & F_EXPIRY != 0).then(|| b.u32()).transpose()?;
            let mut properties = PublishProperties {
                payload_format_indicator: (flags & F_FORMAT != 0).then(|| b.u8()).transpose()?,
                ..PublishProperties::default()
            };
            if flags & F_RESPONSE != 0 {
                properties.response_topic = Some(b.string()?);
            }
            if flags & F_CORRELATION != 0 {
                properties.correlation_data = Some(Bytes::copy_from_slice(b.bytes()?));
            }
            if flags & F_CONTENT_TYPE != 0 {
                properties.content_type = Some(b.string()?);
            }
            let count = b.u32()?;
            for _ in 0..count {
                let key = b.string()?;
                let value = b.string()?;
                properties.user_properties.push((key, value));
            }
            let payload = Bytes::copy_from_slice(b.bytes()?);
            Ok(Record::Message(
                seq,
                SpooledMessage {
                    route,
                    topic,
                    qos,
                    retain: flags & F_RETAIN != 0,
                    payload,
                    properties,
                    expiry,
                    received_ms,
                },
            ))
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

/// Reads the kind, seq, route and receive time of a body without decoding the rest.
///
/// # Errors
/// A description of what is malformed.
pub(crate) fn summarize(body: &[u8]) -> Result<Summary, String> {
    let mut b = Body(body);
    let kind = b.u8()?;
    let seq = b.u64()?;
    match kind {
        KIND_ACK => Ok(Summary { seq, message: None }),
        KIND_MESSAGE => {
            let received_ms = b.u64()?;
            let route = b.string()?;
            Ok(Summary {
                seq,
                message: Some((route, received_ms)),
            })
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    pub(crate) fn message(n: u64) -> SpooledMessage {
        let mut properties = PublishProperties::default();
        properties
            .user_properties
            .push(("e4k-hops".into(), "1".into()));
        properties.content_type = Some("text/plain".into());
        properties.correlation_data = Some(Bytes::from_static(b"corr"));
        SpooledMessage {
            route: "telemetry".into(),
            topic: format!("factory/{n}"),
            qos: QoS::AtLeastOnce,
            retain: n.is_multiple_of(2),
            payload: Bytes::from(n.to_string()),
            properties,
            expiry: Some(60),
            received_ms: 1_700_000_000_000 + n,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode_message(&mut out, 7, &message(7));
        encode_ack(&mut out, 5);
        let h: [u8; HEADER] = out[..HEADER].try_into().unwrap();
        let Header::Sound { len, crc } = header(&h) else {
            panic!("damaged")
        };
        let body = &out[HEADER..HEADER + len as usize];
        assert_eq!(crc32fast::hash(body), crc);
        assert_eq!(decode(body).unwrap(), Record::Message(7, message(7)));
        assert_eq!(
            summarize(body).unwrap(),
            Summary {
                seq: 7,
                message: Some(("telemetry".into(), 1_700_000_000_007))
            }
        );
        let rest = &out[HEADER + len as usize..];
        let h: [u8; HEADER] = rest[..HEADER].try_into().unwrap();
        let Header::Sound { len, .. } = header(&h) else {
            panic!("damaged")
        };
        assert_eq!(
            decode(&rest[HEADER..HEADER + len as usize]).unwrap(),
            Record::Ack(5)
        );
    }

    #[test]
    fn a_zeroed_or_flipped_header_is_damaged() {
        assert_eq!(header(&[0; HEADER]), Header::Damaged);
        let mut out = Vec::new();
        encode_ack(&mut out, 5);
        let mut h: [u8; HEADER] = out[..HEADER].try_into().unwrap();
        h[1] ^= 0x10;
        assert_eq!(header(&h), Header::Damaged);
    }
}
