//! MQTT 5 properties and enhanced authentication, as far as the front end needs them: the
//! Authentication Method (0x15) and Authentication Data (0x16) of a CONNECT, which the front end
//! checks itself and removes before the CONNECT goes to mosquitto (mosquitto without an auth
//! plugin answers any authentication method with CONNACK 0x8C), the AUTH packet (type 15) of
//! re-authentication, and the Authentication Method the CONNACK of such a session carries.
//!
//! A property list is a sequence of `identifier, value`; the identifier decides the value's
//! shape (MQTT 5 §2.2.2.2), so the list is walked with the table in [`value_len`].

use super::packet::{
    Connect, PacketError, connack_with_property, decode_varint, encode_varint, put_binary,
};

/// Authentication Method: a UTF-8 string.
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
/// Authentication Data: binary data.
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
/// User Property: a string pair.
const USER_PROPERTY: u8 = 0x26;
/// AUTH reason: re-authenticate.
pub(crate) const REAUTHENTICATE: u8 = 0x19;
/// AUTH reason: success.
pub(crate) const SUCCESS: u8 = 0x00;
/// The first byte of an AUTH packet.
pub(crate) const AUTH: u8 = 0xF0;

/// The length of the value of property `id` at the start of `rest`, `None` for an unknown
/// identifier or a truncated value.
fn value_len(id: u8, rest: &[u8]) -> Option<usize> {
    let two = |at: usize| -> Option<usize> {
        let bytes = rest.get(at..at + 2)?;
        Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
    };
    let len = match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
        0x13 | 0x21 | 0x22 | 0x23 => 2,
        0x02 | 0x11 | 0x18 | 0x27 => 4,
        0x0B => decode_varint(rest).ok()??.1,
        0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1A | 0x1C | 0x1F => 2 + two(0)?,
        USER_PROPERTY => {
            let first = 2 + two(0)?;
            first + 2 + two(first)?
        }
        _ => return None,
    };
    (rest.len() >= len).then_some(len)
}

/// The properties of a list: `(identifier, value bytes)`, in order.
pub(crate) fn split(mut props: &[u8]) -> Result<Vec<(u8, &[u8])>, PacketError> {
    let mut out = Vec::new();
    while let Some((&id, rest)) = props.split_first() {
        let len = value_len(id, rest).ok_or(PacketError::Malformed("bad property"))?;
        out.push((id, &rest[..len]));
        props = &rest[len..];
    }
    Ok(out)
}

/// Whether a property list holds `id` (false for a list that does not parse).
pub(crate) fn has(props: &[u8], id: u8) -> bool {
    split(props).is_ok_and(|list| list.iter().any(|(i, _)| *i == id))
}

/// The bytes of a string or binary value (without its length).
fn binary(value: &[u8]) -> &[u8] {
    value.get(2..).unwrap_or_default()
}

/// A CONNECT's or AUTH's enhanced authentication.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Authentication {
    /// The Authentication Method, e.g. `OAUTH2-JWT`.
    pub(crate) method: String,
    /// The Authentication Data (the token), if any.
    pub(crate) data: Option<Vec<u8>>,
}

// Hand-written so that a token never reaches a log.
impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("method", &self.method)
            .field(
                "data",
                &self.data.as_ref().map(|d| format!("<{} bytes>", d.len())),
            )
            .finish()
    }
}

/// The authentication of a property list: `None` without a method; an error for data
/// without a method, a repeated property or a method that is not UTF-8.
fn authentication(props: &[u8]) -> Result<Option<Authentication>, PacketError> {
    let list = split(props)?;
    let find = |id: u8| -> Result<Option<&[u8]>, PacketError> {
        let mut values = list
            .iter()
            .filter(|(i, _)| *i == id)
            .map(|(_, v)| binary(v));
        let first = values.next();
        if values.next().is_some() {
            return Err(PacketError::Malformed("a repeated authentication property"));
        }
        Ok(first)
    };
    let data = find(AUTHENTICATION_DATA)?.map(<[u8]>::to_vec);
    let Some(method) = find(AUTHENTICATION_METHOD)? else {
        return match data {
            Some(_) => Err(PacketError::Malformed(
                "authentication data without a method",
            )),
            None => Ok(None),
        };
    };
    let method = String::from_utf8(method.to_vec())
        .map_err(|_| PacketError::Malformed("the authentication method is not UTF-8"))?;
    Ok(Some(Authentication { method, data }))
}

impl Connect {
    /// The CONNECT's enhanced authentication (v5), if it has an Authentication Method.
    pub(crate) fn authentication(&self) -> Result<Option<Authentication>, PacketError> {
        authentication(&self.properties)
    }

    /// The same CONNECT without Authentication Method and Data, for mosquitto.
    pub(crate) fn without_authentication(&self) -> Result<Self, PacketError> {
        let mut properties = Vec::with_capacity(self.properties.len());
        for (id, value) in split(&self.properties)? {
            if id != AUTHENTICATION_METHOD && id != AUTHENTICATION_DATA {
                properties.push(id);
                properties.extend_from_slice(value);
            }
        }
        let mut plain = self.clone();
        plain.properties = properties;
        Ok(plain)
    }
}

/// An AUTH packet from a client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Auth {
    /// The reason code (0x00 when the packet has none).
    pub(crate) reason: u8,
    /// Its method and data.
    pub(crate) authentication: Option<Authentication>,
    /// Whether it carries User Properties (Event Grid fails such a request).
    pub(crate) user_properties: bool,
}

/// Reads a whole AUTH packet.
pub(crate) fn parse_auth(packet: &[u8]) -> Result<Auth, PacketError> {
    if packet.first() != Some(&AUTH) {
        return Err(PacketError::Malformed("not an AUTH packet"));
    }
    let (remaining, n) =
        decode_varint(&packet[1..])?.ok_or(PacketError::Malformed("truncated AUTH"))?;
    let body = packet
        .get(1 + n..1 + n + remaining)
        .ok_or(PacketError::Malformed("truncated AUTH"))?;
    let Some((&reason, rest)) = body.split_first() else {
        return Ok(Auth {
            reason: SUCCESS,
            authentication: None,
            user_properties: false,
        });
    };
    let props = match decode_varint(rest)? {
        None => &[][..],
        Some((len, n)) => rest
            .get(n..n + len)
            .ok_or(PacketError::Malformed("truncated AUTH properties"))?,
    };
    Ok(Auth {
        reason,
        authentication: authentication(props)?,
        user_properties: has(props, USER_PROPERTY),
    })
}

/// A server AUTH packet with `reason` and the session's authentication method.
pub(crate) fn auth(reason: u8, method: &str) -> Vec<u8> {
    let mut props = vec![AUTHENTICATION_METHOD];
    put_binary(method.as_bytes(), &mut props);
    let mut body = vec![reason];
    encode_varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    let mut packet = vec![AUTH];
    encode_varint(body.len(), &mut packet);
    packet.extend_from_slice(&body);
    packet
}

/// A successful v5 CONNACK with the Authentication Method property added (the session's
/// method, as MQTT 5 §4.12 has the server echo it); other packets come back unchanged.
pub(crate) fn with_authentication_method(packet: &[u8], method: &str) -> Vec<u8> {
    let mut value = Vec::new();
    put_binary(method.as_bytes(), &mut value);
    connack_with_property(packet, AUTHENTICATION_METHOD, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 CONNECT with session expiry, a user property and enhanced authentication.
    fn jwt_connect() -> Vec<u8> {
        let mut props = vec![0x11, 0, 0, 0x0e, 0x10];
        props.extend_from_slice(&[0x26, 0, 1, b'k', 0, 1, b'v']);
        props.push(AUTHENTICATION_METHOD);
        put_binary(b"OAUTH2-JWT", &mut props);
        props.push(AUTHENTICATION_DATA);
        put_binary(b"a.b.c", &mut props);
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60];
        encode_varint(props.len(), &mut body);
        body.extend_from_slice(&props);
        body.extend_from_slice(&[0, 2, b'c', b'1']);
        let mut packet = vec![0x10];
        encode_varint(body.len(), &mut packet);
        packet.extend_from_slice(&body);
        packet
    }

    #[test]
    fn connect_authentication_is_read_and_removed() {
        let (connect, _) = Connect::parse(&jwt_connect(), 1024).unwrap().unwrap();
        let auth = connect.authentication().unwrap().unwrap();
        assert_eq!(auth.method, "OAUTH2-JWT");
        assert_eq!(auth.data.as_deref(), Some(&b"a.b.c"[..]));
        assert!(
            !format!("{auth:?}").contains("a.b.c"),
            "Debug hides the token"
        );
        let plain = connect.without_authentication().unwrap();
        assert_eq!(plain.authentication().unwrap(), None);
        let (again, _) = Connect::parse(&plain.encode(), 1024).unwrap().unwrap();
        let ids: Vec<u8> = split(&again.properties)
            .unwrap()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(ids, [0x11, 0x26], "the other properties stay");
    }

    #[test]
    fn auth_packets_round_trip() {
        let packet = auth(SUCCESS, "CUSTOM-JWT");
        assert_eq!(packet[0], AUTH);
        let read = parse_auth(&packet).unwrap();
        assert_eq!(read.reason, SUCCESS);
        assert_eq!(read.authentication.unwrap().method, "CUSTOM-JWT");
        assert_eq!(parse_auth(&[AUTH, 0]).unwrap().reason, SUCCESS);
        // reason 0x19, method, data, a user property
        let mut props = vec![AUTHENTICATION_METHOD];
        put_binary(b"OAUTH2-JWT", &mut props);
        props.push(AUTHENTICATION_DATA);
        put_binary(b"t", &mut props);
        props.extend_from_slice(&[0x26, 0, 1, b'k', 0, 1, b'v']);
        let mut body = vec![REAUTHENTICATE];
        encode_varint(props.len(), &mut body);
        body.extend_from_slice(&props);
        let mut packet = vec![AUTH];
        encode_varint(body.len(), &mut packet);
        packet.extend_from_slice(&body);
        let read = parse_auth(&packet).unwrap();
        assert_eq!(read.reason, REAUTHENTICATE);
        assert_eq!(
            read.authentication.unwrap().data.as_deref(),
            Some(&b"t"[..])
        );
        assert!(read.user_properties);
        assert!(parse_auth(&[AUTH, 5, 0x19]).is_err());
    }

    #[test]
    fn malformed_properties_are_errors() {
        assert!(split(&[0x11, 0, 0]).is_err(), "truncated u32");
        assert!(split(&[0x7f]).is_err(), "unknown identifier");
        let mut data_only = vec![AUTHENTICATION_DATA];
        put_binary(b"x", &mut data_only);
        assert!(authentication(&data_only).is_err());
        assert!(has(&[0x24, 1], 0x24));
    }

    #[test]
    fn connack_gains_the_method_once() {
        let connack = [0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x01];
        let added = with_authentication_method(&connack, "OAUTH2-JWT");
        let props = &added[5..];
        let list = split(props).unwrap();
        assert_eq!(list[1].0, AUTHENTICATION_METHOD);
        assert_eq!(with_authentication_method(&added, "OAUTH2-JWT"), added);
        let refused = [0x20, 0x03, 0x00, 0x87, 0x00];
        assert_eq!(with_authentication_method(&refused, "x"), refused);
    }
}
