//! The little of MQTT the front end speaks: CONNECT (v3.1, v3.1.1, v5) parsed and re-encoded
//! with another username and no password, CONNACK refusals, and the packet framing the pipe
//! needs to hold QoS at 1 (mosquitto 2.0.11 forgets `max_qos` on a reload signal, so the front
//! end enforces it): the QoS of PUBLISH, the requested QoS of SUBSCRIBE, and the Maximum QoS
//! property of a v5 CONNACK. v5 properties, enhanced authentication and AUTH are in `props`.
//!
//! CONNECT layout: fixed header (`0x10`, remaining length as a variable byte integer), variable
//! header (protocol name, level, flags, keep alive, v5 properties), payload (client id, v5 will
//! properties, will topic, will payload, username, password).

/// Why a CONNECT could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PacketError {
    /// The first packet is not a CONNECT.
    NotConnect(u8),
    /// The packet is longer than allowed.
    TooLarge(usize),
    /// The bytes do not form a CONNECT.
    Malformed(&'static str),
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotConnect(byte) => write!(f, "the first packet is not CONNECT (0x{byte:02x})"),
            Self::TooLarge(len) => write!(f, "the CONNECT packet is too large ({len} bytes)"),
            Self::Malformed(what) => write!(f, "malformed CONNECT: {what}"),
        }
    }
}

/// The protocol level of MQTT 5.
pub(crate) const V5: u8 = 5;

const USERNAME_FLAG: u8 = 0x80;
const PASSWORD_FLAG: u8 = 0x40;
const WILL_FLAG: u8 = 0x04;

/// A CONNECT packet, with the parts the front end does not look at kept as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Connect {
    /// `MQTT` (3.1.1, 5) or `MQIsdp` (3.1).
    protocol_name: Vec<u8>,
    /// 3 (3.1), 4 (3.1.1) or 5.
    pub(crate) level: u8,
    /// Connect flags as received.
    flags: u8,
    keep_alive: u16,
    /// v5 CONNECT properties (without their length).
    pub(super) properties: Vec<u8>,
    /// The client identifier (session name).
    pub(crate) client_id: String,
    /// v5 will properties, will topic, will payload (raw, each without its length).
    will: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// The username, if any.
    pub(crate) username: Option<String>,
    /// Whether a password was sent (it is never forwarded).
    pub(crate) has_password: bool,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(PacketError::Malformed("truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, PacketError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PacketError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn binary(&mut self) -> Result<&'a [u8], PacketError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn string(&mut self) -> Result<String, PacketError> {
        String::from_utf8(self.binary()?.to_vec())
            .map_err(|_| PacketError::Malformed("a string is not UTF-8"))
    }

    fn varint(&mut self) -> Result<usize, PacketError> {
        match decode_varint(&self.bytes[self.pos..])? {
            Some((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            None => Err(PacketError::Malformed("truncated variable byte integer")),
        }
    }
}

/// A variable byte integer at the start of `bytes`: `(value, length)`, or `None` if more bytes
/// are needed.
pub(super) fn decode_varint(bytes: &[u8]) -> Result<Option<(usize, usize)>, PacketError> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(PacketError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    } else {
        Ok(None)
    }
}

pub(super) fn encode_varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

pub(super) fn put_binary(bytes: &[u8], out: &mut Vec<u8>) {
    // Every field was read with a u16 length, or is a username the emulator built (short).
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

impl Connect {
    /// Reads a CONNECT from the start of `buffer`: `Ok(None)` if more bytes are needed,
    /// otherwise the packet and how many bytes it took. Packets longer than `max_len` are
    /// refused before they are read whole.
    pub(crate) fn parse(
        buffer: &[u8],
        max_len: usize,
    ) -> Result<Option<(Self, usize)>, PacketError> {
        let Some(&first) = buffer.first() else {
            return Ok(None);
        };
        if first != 0x10 {
            return Err(PacketError::NotConnect(first));
        }
        let Some((remaining, len_bytes)) = decode_varint(&buffer[1..])? else {
            return Ok(None);
        };
        let total = 1 + len_bytes + remaining;
        if total > max_len {
            return Err(PacketError::TooLarge(total));
        }
        if buffer.len() < total {
            return Ok(None);
        }
        let mut r = Reader {
            bytes: &buffer[1 + len_bytes..total],
            pos: 0,
        };
        let protocol_name = r.binary()?.to_vec();
        let level = r.byte()?;
        match (protocol_name.as_slice(), level) {
            (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => {}
            _ => return Err(PacketError::Malformed("unknown protocol name or level")),
        }
        let flags = r.byte()?;
        let keep_alive = r.u16()?;
        let properties = if level == V5 {
            let len = r.varint()?;
            r.take(len)?.to_vec()
        } else {
            Vec::new()
        };
        let client_id = r.string()?;
        let will = if flags & WILL_FLAG != 0 {
            let will_properties = if level == V5 {
                let len = r.varint()?;
                r.take(len)?.to_vec()
            } else {
                Vec::new()
            };
            let topic = r.binary()?.to_vec();
            let payload = r.binary()?.to_vec();
            Some((will_properties, topic, payload))
        } else {
            None
        };
        let username = if flags & USERNAME_FLAG != 0 {
            Some(r.string()?)
        } else {
            None
        };
        let has_password = flags & PASSWORD_FLAG != 0;
        if has_password {
            r.binary()?;
        }
        if r.pos != r.bytes.len() {
            return Err(PacketError::Malformed("bytes after the payload"));
        }
        Ok(Some((
            Self {
                protocol_name,
                level,
                flags,
                keep_alive,
                properties,
                client_id,
                will,
                username,
                has_password,
            },
            total,
        )))
    }

    /// The same CONNECT with `username` in place of the client's and no password.
    pub(crate) fn with_credentials(&self, username: &str) -> Self {
        Self {
            flags: (self.flags & !PASSWORD_FLAG) | USERNAME_FLAG,
            username: Some(username.to_owned()),
            has_password: false,
            ..self.clone()
        }
    }

    /// The packet's bytes. A password is never written (the front end drops it).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_binary(&self.protocol_name, &mut body);
        body.push(self.level);
        let mut flags = self.flags & !(USERNAME_FLAG | PASSWORD_FLAG);
        if self.username.is_some() {
            flags |= USERNAME_FLAG;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.level == V5 {
            encode_varint(self.properties.len(), &mut body);
            body.extend_from_slice(&self.properties);
        }
        put_binary(self.client_id.as_bytes(), &mut body);
        if let Some((properties, topic, payload)) = &self.will {
            if self.level == V5 {
                encode_varint(properties.len(), &mut body);
                body.extend_from_slice(properties);
            }
            put_binary(topic, &mut body);
            put_binary(payload, &mut body);
        }
        if let Some(username) = &self.username {
            put_binary(username.as_bytes(), &mut body);
        }
        let mut packet = vec![0x10];
        encode_varint(body.len(), &mut packet);
        packet.extend_from_slice(&body);
        packet
    }
}

/// The length of the whole packet at the start of `buffer`, or `None` until `buffer` holds all
/// of it. A packet over `max_len` is an error as soon as its length is known.
pub(crate) fn frame_len(buffer: &[u8], max_len: usize) -> Result<Option<usize>, PacketError> {
    if buffer.is_empty() {
        return Ok(None);
    }
    let Some((remaining, len_bytes)) = decode_varint(&buffer[1..])? else {
        return Ok(None);
    };
    let total = 1 + len_bytes + remaining;
    if total > max_len {
        return Err(PacketError::TooLarge(total));
    }
    Ok((buffer.len() >= total).then_some(total))
}

/// The QoS of a PUBLISH packet (by its first byte), `None` for other packets.
pub(crate) fn publish_qos(first: u8) -> Option<u8> {
    (first >> 4 == 3).then_some((first >> 1) & 0x03)
}

/// Lowers every requested QoS 2 of a whole SUBSCRIBE packet to 1, in place (the length does
/// not change). Other packets are left alone.
pub(crate) fn cap_subscribe_qos(packet: &mut [u8], level: u8) -> Result<(), PacketError> {
    if packet.first().map(|b| b >> 4) != Some(8) {
        return Ok(());
    }
    let Some((remaining, len_bytes)) = decode_varint(&packet[1..])? else {
        return Err(PacketError::Malformed("truncated SUBSCRIBE"));
    };
    let mut pos = 1 + len_bytes + 2; // packet identifier
    let end = 1 + len_bytes + remaining;
    if level == V5 {
        let Some((props, n)) = decode_varint(packet.get(pos..end).unwrap_or_default())? else {
            return Err(PacketError::Malformed("truncated SUBSCRIBE properties"));
        };
        pos += n + props;
    }
    while pos + 2 <= end {
        let len = usize::from(u16::from_be_bytes([packet[pos], packet[pos + 1]]));
        pos += 2 + len;
        let Some(options) = packet.get_mut(pos).filter(|_| pos < end) else {
            return Err(PacketError::Malformed("SUBSCRIBE filter without options"));
        };
        if *options & 0x03 == 2 {
            *options = (*options & !0x03) | 1;
        }
        pos += 1;
    }
    Ok(())
}

/// A v5 CONNACK with the Maximum QoS 1 property added if it lacks one; other packets and v3
/// CONNACKs come back unchanged.
pub(crate) fn with_max_qos_1(packet: &[u8], level: u8) -> Vec<u8> {
    if level != V5 {
        return packet.to_vec();
    }
    connack_with_property(packet, 0x24, &[0x01])
}

/// A successful v5 CONNACK with property `id` (its encoded `value` after the id byte) added
/// unless it has one; other packets, refusals and malformed CONNACKs come back unchanged.
pub(super) fn connack_with_property(packet: &[u8], id: u8, value: &[u8]) -> Vec<u8> {
    let add = || -> Option<Vec<u8>> {
        if packet.first() != Some(&0x20) {
            return None;
        }
        let (remaining, len_bytes) = decode_varint(&packet[1..]).ok()??;
        let body = packet.get(1 + len_bytes..1 + len_bytes + remaining)?;
        let (flags, rest) = body.split_first()?;
        let (reason, rest) = rest.split_first()?;
        let (props_len, n) = decode_varint(rest).ok()??;
        let props = rest.get(n..n + props_len)?;
        if *reason >= 0x80 || super::props::has(props, id) {
            return None;
        }
        let mut new_props = props.to_vec();
        new_props.push(id);
        new_props.extend_from_slice(value);
        let mut new_body = vec![*flags, *reason];
        encode_varint(new_props.len(), &mut new_body);
        new_body.extend_from_slice(&new_props);
        let mut out = vec![0x20];
        encode_varint(new_body.len(), &mut out);
        out.extend_from_slice(&new_body);
        Some(out)
    };
    add().unwrap_or_else(|| packet.to_vec())
}

/// A v5 DISCONNECT with `reason` (e.g. 0x9B QoS not supported, 0x95 packet too large). The
/// empty property length is written although MQTT 5 lets it be left out: rumqttc 0.25 cannot
/// read a DISCONNECT without it.
pub(crate) fn disconnect(reason: u8) -> Vec<u8> {
    vec![0xE0, 0x02, reason, 0x00]
}

/// Why the front end refuses a connection, mapped to each version's CONNACK code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unknown authentication name, or a certificate that does not prove it.
    BadCredentials,
    /// A disabled client, or a client id held by another authentication name.
    NotAuthorized,
    /// `maximumClientSessionsPerAuthenticationName` reached.
    QuotaExceeded,
    /// No namespace serves MQTT.
    Unavailable,
    /// A CONNECT authentication method other than `OAUTH2-JWT` and `CUSTOM-JWT` (v5 only).
    BadAuthenticationMethod,
}

impl Refusal {
    /// The CONNACK return code (v3) or reason code (v5).
    pub(crate) fn code(self, level: u8) -> u8 {
        match (self, level == V5) {
            (Self::BadCredentials, true) => 0x86,
            (Self::NotAuthorized, true) => 0x87,
            (Self::QuotaExceeded, true) => 0x97,
            (Self::Unavailable, true) => 0x88,
            (Self::BadAuthenticationMethod, true) => 0x8C,
            (Self::BadCredentials, false) => 0x04,
            // v3 has no quota code: "not authorized" is the closest.
            (Self::NotAuthorized | Self::QuotaExceeded, false) => 0x05,
            (Self::Unavailable, false) => 0x03,
            // v3 has no authentication method: cannot happen; the credentials are refused.
            (Self::BadAuthenticationMethod, false) => 0x04,
        }
    }
}

/// A CONNACK refusing the connection, for the protocol level of the CONNECT.
pub(crate) fn connack(level: u8, code: u8) -> Vec<u8> {
    if level == V5 {
        // session present 0, reason code, no properties
        vec![0x20, 0x03, 0x00, code, 0x00]
    } else {
        vec![0x20, 0x02, 0x00, code]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 CONNECT as rumqttc writes it, with properties, a will, username and password.
    fn v5_connect() -> Vec<u8> {
        let mut body = vec![
            0x00,
            0x04,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            0b1100_0110,
            0x00,
            0x3c,
        ];
        body.extend_from_slice(&[0x05, 0x11, 0x00, 0x00, 0x0e, 0x10]); // session expiry 3600
        body.extend_from_slice(&[0x00, 0x02, b'c', b'1']);
        body.extend_from_slice(&[0x02, 0x01, 0x01]); // will properties: payload format 1
        body.extend_from_slice(&[0x00, 0x01, b't', 0x00, 0x02, b'h', b'i']);
        body.extend_from_slice(&[0x00, 0x03, b'b', b'o', b'b', 0x00, 0x02, b'p', b'w']);
        let mut packet = vec![0x10];
        encode_varint(body.len(), &mut packet);
        packet.extend_from_slice(&body);
        packet
    }

    #[test]
    fn v5_connect_round_trips_and_rewrites_credentials() {
        let bytes = v5_connect();
        assert_eq!(
            Connect::parse(&bytes[..5], 1024),
            Ok(None),
            "needs more bytes"
        );
        let mut with_next = bytes.clone();
        with_next.extend_from_slice(&[0x82, 0x00]);
        let (connect, used) = Connect::parse(&with_next, 1024).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(connect.level, 5);
        assert_eq!(connect.client_id, "c1");
        assert_eq!(connect.username.as_deref(), Some("bob"));
        assert!(connect.has_password);

        let rewritten = connect.with_credentials("ns/mosquitto").encode();
        let (again, _) = Connect::parse(&rewritten, 1024).unwrap().unwrap();
        assert_eq!(again.username.as_deref(), Some("ns/mosquitto"));
        assert!(!again.has_password);
        assert_eq!(again.will, connect.will);
        assert_eq!(again.properties, connect.properties);
        assert_eq!(again.keep_alive, 60);
        assert_eq!(
            rewritten[9] & 0b1100_0000,
            0b1000_0000,
            "username flag only"
        );
    }

    #[test]
    fn v311_connect_without_username_gains_one() {
        let body = [
            0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0x02, 0x00, 0x0a, 0x00, 0x01, b'x',
        ];
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend_from_slice(&body);
        let (connect, _) = Connect::parse(&packet, 1024).unwrap().unwrap();
        assert_eq!(connect.username, None);
        let rewritten = connect.with_credentials("u").encode();
        let (again, used) = Connect::parse(&rewritten, 1024).unwrap().unwrap();
        assert_eq!(used, rewritten.len());
        assert_eq!(again.username.as_deref(), Some("u"));
        assert_eq!(again.client_id, "x");
    }

    #[test]
    fn refuses_what_is_not_a_connect() {
        assert_eq!(
            Connect::parse(&[0x30, 0x00], 1024),
            Err(PacketError::NotConnect(0x30))
        );
        assert_eq!(
            Connect::parse(&[0x10, 0xff, 0xff, 0x7f], 1024),
            Err(PacketError::TooLarge(2_097_155))
        );
        assert!(matches!(
            Connect::parse(&[0x10, 0x02, 0x00, 0x09], 1024),
            Err(PacketError::Malformed(_))
        ));
    }

    #[test]
    fn framing_qos_and_connack_properties() {
        assert_eq!(frame_len(&[0x30], 100), Ok(None));
        assert_eq!(frame_len(&[0x30, 0x02, 0, 0], 100), Ok(Some(4)));
        assert_eq!(
            frame_len(&[0x30, 0x02, 0], 100),
            Ok(None),
            "not all there yet"
        );
        assert_eq!(
            frame_len(&[0x30, 0x80, 0x01], 100),
            Err(PacketError::TooLarge(131))
        );
        assert_eq!(publish_qos(0x34), Some(2));
        assert_eq!(publish_qos(0x32), Some(1));
        assert_eq!(publish_qos(0x82), None);

        // v5 SUBSCRIBE id 1, no properties, "a/#" QoS 2 + no-local, "b" QoS 1
        let mut sub = vec![
            0x82, 0x0c, 0x00, 0x01, 0x00, 0x00, 0x03, b'a', b'/', b'#', 0x06,
        ];
        sub.extend_from_slice(&[0x00, 0x01, b'b', 0x01]);
        sub[1] = (sub.len() - 2) as u8;
        cap_subscribe_qos(&mut sub, 5).unwrap();
        assert_eq!(sub[10], 0x05, "QoS 2 lowered, no-local kept");
        assert_eq!(sub[14], 0x01);
        let mut v3 = vec![0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'x', 0x02];
        cap_subscribe_qos(&mut v3, 4).unwrap();
        assert_eq!(v3[7], 0x01);

        // CONNACK with receive maximum 20 gains Maximum QoS 1, once.
        let connack = [0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x14];
        let added = with_max_qos_1(&connack, 5);
        assert_eq!(
            added,
            [0x20, 0x08, 0x00, 0x00, 0x05, 0x21, 0x00, 0x14, 0x24, 0x01]
        );
        assert_eq!(with_max_qos_1(&added, 5), added);
        assert_eq!(with_max_qos_1(&[0x20, 0x02, 0, 0], 4), [0x20, 0x02, 0, 0]);
        assert_eq!(disconnect(0x9b), [0xe0, 0x02, 0x9b, 0x00]);
    }

    #[test]
    fn connack_codes_per_version() {
        assert_eq!(
            connack(5, Refusal::QuotaExceeded.code(5)),
            [0x20, 3, 0, 0x97, 0]
        );
        assert_eq!(
            connack(4, Refusal::BadCredentials.code(4)),
            [0x20, 2, 0, 0x04]
        );
        assert_eq!(Refusal::NotAuthorized.code(5), 0x87);
        assert_eq!(Refusal::BadCredentials.code(5), 0x86);
        assert_eq!(Refusal::Unavailable.code(3), 0x03);
    }
}
