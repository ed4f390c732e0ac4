//! A raw MQTT 5 client over TLS without a client certificate: CONNECT with enhanced
//! authentication, AUTH, PUBLISH, SUBSCRIBE, PINGREQ written by hand (rumqttc 0.25 cannot send
//! AUTH; the bytes from `e4k_tests::wire`), and whole packets read back.

use std::sync::Arc;
use std::time::Duration;

use e4k_emulator::RunningEmulator;
use e4k_tests::wire;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long a packet may take to arrive.
pub(crate) const ARRIVAL: Duration = Duration::from_secs(5);

pub(crate) const CONNACK: u8 = 0x20;
pub(crate) const PUBLISH: u8 = 0x30;
pub(crate) const PUBACK: u8 = 0x40;
pub(crate) const SUBACK: u8 = 0x90;
pub(crate) const PINGRESP: u8 = 0xD0;
pub(crate) const DISCONNECT: u8 = 0xE0;
pub(crate) const AUTH: u8 = 0xF0;

fn auth_properties(method: &str, token: &str) -> Vec<u8> {
    let mut props = vec![0x15];
    wire::string(method.as_bytes(), &mut props);
    props.push(0x16);
    wire::string(token.as_bytes(), &mut props);
    props
}

/// A v5 CONNECT (clean start, keep-alive 30 s) with `method` and `token` as enhanced
/// authentication, or none when `method` is empty.
pub(crate) fn connect(client_id: &str, method: &str, token: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30];
    let props = if method.is_empty() {
        Vec::new()
    } else {
        auth_properties(method, token)
    };
    wire::varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    wire::string(client_id.as_bytes(), &mut body);
    wire::packet(0x10, &body)
}

/// An AUTH with `reason` (0x19 re-authenticate), `method` and `token`.
pub(crate) fn auth(reason: u8, method: &str, token: &str) -> Vec<u8> {
    let props = auth_properties(method, token);
    let mut body = vec![reason];
    wire::varint(props.len(), &mut body);
    body.extend_from_slice(&props);
    wire::packet(AUTH, &body)
}

/// A QoS 1 PUBLISH.
pub(crate) fn publish(topic: &str, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    wire::string(topic.as_bytes(), &mut body);
    body.extend_from_slice(&id.to_be_bytes());
    body.push(0); // no properties
    body.extend_from_slice(payload);
    wire::packet(PUBLISH | 0x02, &body)
}

/// A SUBSCRIBE of one filter at QoS 1.
pub(crate) fn subscribe(id: u16, filter: &str) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.push(0);
    wire::string(filter.as_bytes(), &mut body);
    body.push(0x01);
    wire::packet(0x82, &body)
}

pub(crate) fn pingreq() -> Vec<u8> {
    vec![0xC0, 0x00]
}

/// The reason code of a CONNACK, PUBACK, SUBACK (first filter), DISCONNECT or AUTH.
pub(crate) fn reason(packet: &[u8]) -> u8 {
    let mut pos = 1;
    while packet[pos] & 0x80 != 0 {
        pos += 1;
    }
    let body = &packet[pos + 1..];
    match packet[0] & 0xF0 {
        CONNACK => body[1],
        PUBACK => body.get(2).copied().unwrap_or(0),
        SUBACK => {
            // packet id, properties (length 0 from mosquitto), then the codes
            let props = usize::from(body[2]);
            body[3 + props]
        }
        DISCONNECT | AUTH => body.first().copied().unwrap_or(0),
        other => panic!("no reason code in packet type 0x{other:02x}"),
    }
}

/// One TLS connection to the MQTT port.
pub(crate) struct Raw {
    stream: TlsStream<TcpStream>,
    buffer: Vec<u8>,
}

impl Raw {
    /// TLS to the emulator's MQTT port as `localhost`, trusting its CA, with no client
    /// certificate.
    pub(crate) async fn open(emulator: &RunningEmulator) -> Raw {
        let mut roots = rustls::RootCertStore::empty();
        let ca = emulator.mqtt_ca_pem_path().unwrap();
        for cert in e4k_provisioning::certs::read_certificates(ca).unwrap() {
            roots.add(cert).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(emulator.mqtt_addr().unwrap())
            .await
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS without a client certificate");
        Raw {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Opens a connection and sends CONNECT; returns it and the CONNACK reason code.
    pub(crate) async fn connect(
        emulator: &RunningEmulator,
        client_id: &str,
        method: &str,
        token: &str,
    ) -> (Raw, u8) {
        let mut raw = Raw::open(emulator).await;
        raw.send(&connect(client_id, method, token)).await;
        let connack = raw.expect(CONNACK).await;
        let code = reason(&connack);
        (raw, code)
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    fn whole(&mut self) -> Option<Vec<u8>> {
        let mut len = 0usize;
        for i in 0..4 {
            let byte = *self.buffer.get(1 + i)?;
            len |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let total = 2 + i + len;
                return (self.buffer.len() >= total).then(|| self.buffer.drain(..total).collect());
            }
        }
        None
    }

    /// The next packet within `within`; `None` on timeout or when the server closed.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(packet) = self.whole() {
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buffer.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next packet of type `kind` (others skipped), or a panic.
    pub(crate) async fn expect(&mut self, kind: u8) -> Vec<u8> {
        loop {
            let packet = self
                .next(ARRIVAL)
                .await
                .unwrap_or_else(|| panic!("no packet of type 0x{kind:02x}"));
            if packet[0] & 0xF0 == kind {
                return packet;
            }
        }
    }

    /// Publishes at QoS 1 and returns the PUBACK reason code.
    pub(crate) async fn publish(&mut self, topic: &str, id: u16) -> u8 {
        self.send(&publish(topic, id, b"hello")).await;
        reason(&self.expect(PUBACK).await)
    }

    /// Whether the server answers a PINGREQ.
    pub(crate) async fn alive(&mut self) -> bool {
        self.send(&pingreq()).await;
        loop {
            match self.next(ARRIVAL).await {
                Some(packet) if packet[0] == PINGRESP => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Whether the server closes the connection within `within` (packets before are skipped).
    pub(crate) async fn closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}
