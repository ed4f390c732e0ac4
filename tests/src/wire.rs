//! MQTT bytes for the tests that speak the protocol by hand (a plain std publisher, raw
//! CONNECTs and AUTH exchanges): variable byte integers, length-prefixed strings, whole packets
//! written and read.

use std::io;

/// Appends `value` as an MQTT variable byte integer (a remaining length, a property length).
pub fn varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = u8::try_from(value % 128).unwrap_or(0);
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

/// Appends `bytes` as an MQTT string or binary data: a big-endian 16-bit length, then the
/// bytes (at most 65,535 of them).
pub fn string(bytes: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// A whole packet: the type-and-flags byte `first`, the remaining length, `body`.
#[must_use]
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// Reads one packet from `stream`: (type-and-flags byte, body).
///
/// # Errors
/// When the stream fails or ends.
pub fn read_packet(stream: &mut impl io::Read) -> io::Result<(u8, Vec<u8>)> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    let kind = byte[0];
    let (mut len, mut shift) = (0usize, 0u32);
    loop {
        stream.read_exact(&mut byte)?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((kind, body))
}
