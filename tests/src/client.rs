//! A test MQTT v5 client (rumqttc) on the plain local broker or the TLS remote one, whose
//! received publishes arrive on a channel.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::env::WAIT;
use crate::pki::Pki;

/// Options for a client `id` of the TLS broker on localhost:`port`: the CA `ca` and the client
/// certificate (with its chain) and key, PEM.
#[must_use]
pub fn tls_options(
    id: &str,
    port: u16,
    ca: Vec<u8>,
    (cert, key): (Vec<u8>, Vec<u8>),
) -> MqttOptions {
    let mut options = MqttOptions::new(id, "localhost", port);
    options.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca,
        alpn: None,
        client_auth: Some((cert, key)),
    }));
    options
}

/// A test MQTT v5 client whose received publishes arrive on a channel.
pub struct TestClient {
    /// The client, to publish and subscribe with.
    pub client: AsyncClient,
    /// What arrived; a SUBACK arrives as a publish on `$suback`.
    pub rx: mpsc::Receiver<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestClient {
    /// Connects to the local (plain) broker.
    pub async fn local(port: u16, id: &str) -> TestClient {
        let options = MqttOptions::new(id, "127.0.0.1", port);
        Self::connect(options).await
    }

    /// Connects to the remote broker with a client certificate for `cn`.
    pub async fn remote(port: u16, id: &str, pki: &Pki, cn: &str) -> TestClient {
        let (cert, key) = pki.client_pem(cn);
        let ca = std::fs::read(&pki.root_file).unwrap();
        Self::connect(tls_options(
            id,
            port,
            ca,
            (cert.into_bytes(), key.into_bytes()),
        ))
        .await
    }

    async fn connect(mut options: MqttOptions) -> TestClient {
        options.set_max_packet_size(Some(1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::channel(10_000);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(publish))) => {
                        let _ = tx.send(publish).await;
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = tx
                            .send(Publish::new("$suback", QoS::AtMostOnce, "", None))
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("test client did not connect")
            .unwrap();
        TestClient { client, rx, task }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client
            .subscribe_many([Filter::new(filter, qos)])
            .await
            .unwrap();
        let publish = self.recv().await;
        assert_eq!(&publish.topic[..], b"$suback");
    }

    /// The next message.
    pub async fn recv(&mut self) -> Publish {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no message in time")
            .expect("client gone")
    }

    /// The next message, or `None` after `wait`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Publish> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Publishes `payload` on `topic`.
    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Bytes>) {
        self.client
            .publish_bytes(topic, qos, retain, payload.into())
            .await
            .unwrap();
    }

    /// Publishes `payload` on `topic` with MQTT 5 `properties`.
    pub async fn publish_with(
        &self,
        topic: &str,
        qos: QoS,
        payload: impl Into<Bytes>,
        properties: PublishProperties,
    ) {
        self.client
            .publish_bytes_with_properties(topic, qos, false, payload.into(), properties)
            .await
            .unwrap();
    }
}
