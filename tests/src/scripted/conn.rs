//! One connection of a [`ScriptedBroker`](super::ScriptedBroker): the CONNECT and CONNACK, then
//! every packet answered as the connection's [`Behaviour`] says.

use super::codec::{In, Out, parse, protocol_level, write};
use super::*;

/// One connection's state.
pub(super) struct Conn {
    pub(super) index: usize,
    pub(super) script: ConnScript,
    pub(super) receive_maximum: u16,
    pub(super) shared: Arc<Shared>,
    pub(super) tx: mpsc::UnboundedSender<Received>,
    /// Acknowledgements held for the next burst.
    pub(super) held: Vec<(u16, Out)>,
    /// The version of the connection's CONNECT.
    pub(super) version: MqttVersion,
}

/// What to do after a packet.
enum Next {
    Continue,
    Close(String),
}

/// Waits for the next tick of `interval`, or forever when there is none.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Conn {
    pub(super) async fn run(mut self, mut stream: TcpStream, cancel: CancellationToken) {
        let ended = match self.serve(&mut stream, &cancel).await {
            Ok(reason) => reason,
            Err(error) => format!("error: {error}"),
        };
        let _ = stream.shutdown().await;
        self.update(|stats| {
            stats.open = false;
            stats.ended = Some(ended);
        });
    }

    fn update(&self, change: impl FnOnce(&mut ConnectionStats)) {
        if let Some(stats) = lock(&self.shared.stats).get_mut(self.index) {
            change(stats);
        }
    }

    async fn serve(
        &mut self,
        stream: &mut TcpStream,
        cancel: &CancellationToken,
    ) -> io::Result<String> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut out = BytesMut::with_capacity(4 * 1024);
        let mut connected = false;
        let mut bursts = match self.script.behaviour {
            Behaviour::AckInBursts(period) => Some(tokio::time::interval_at(
                tokio::time::Instant::now() + period,
                period,
            )),
            Behaviour::Behave | Behaviour::WithholdFirst | Behaviour::Silent => None,
        };
        loop {
            if !connected {
                match protocol_level(&buf) {
                    None => {}
                    Some(4) => self.version = MqttVersion::V3,
                    Some(_) => self.version = MqttVersion::V5,
                }
            }
            while let Some(packet) = parse(&mut buf, self.version)? {
                if !connected {
                    let In::Connect {
                        client_id,
                        authentication,
                    } = packet
                    else {
                        return Ok(format!("first packet not a CONNECT: {packet:?}"));
                    };
                    connected = true;
                    let version = self.version;
                    let authentication_method =
                        authentication.as_ref().map(|(method, _)| method.clone());
                    self.update(|stats| {
                        stats.client_id = client_id;
                        stats.version = Some(version);
                        stats.authentication = authentication;
                    });
                    self.write(
                        &Out::ConnAck {
                            session_present: self.script.session_present,
                            authentication_method,
                        },
                        &mut out,
                    )?;
                    continue;
                }
                if let Next::Close(reason) = self.handle(packet, &mut out)? {
                    stream.write_all(&out).await?;
                    return Ok(reason);
                }
            }
            if !out.is_empty() {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok("closed by the test".to_owned()),
                    written = stream.write_all(&out) => written?,
                }
                out.clear();
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok("closed by the test".to_owned()),
                () = tick(&mut bursts) => self.flush_held(&mut out)?,
                read = stream.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok("closed by the client".to_owned());
                    }
                }
            }
        }
    }

    fn write(&self, packet: &Out, out: &mut BytesMut) -> io::Result<()> {
        write(packet, self.version, self.receive_maximum, out)
    }

    fn handle(&mut self, packet: In, out: &mut BytesMut) -> io::Result<Next> {
        match packet {
            In::Publish(publish) => {
                let pkid = publish.pkid;
                let qos = publish.qos;
                let _ = self.tx.send(Received {
                    connection: self.index,
                    pkid,
                    qos,
                    dup: publish.dup,
                    topic: publish.topic,
                    payload: publish.payload,
                });
                let ack = match qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Out::PubAck(pkid)),
                    QoS::ExactlyOnce => Some(Out::PubRec(pkid)),
                };
                let mut withhold = false;
                let now = Instant::now();
                self.update(|stats| {
                    stats.last_publish = Some(now);
                    if ack.is_some() {
                        stats.publishes.push(pkid);
                        if self.script.behaviour == Behaviour::WithholdFirst
                            && stats.withheld.is_none()
                        {
                            stats.withheld = Some(pkid);
                            withhold = true;
                        }
                    }
                });
                match (ack, self.script.behaviour) {
                    (None, _) => {}
                    (Some(_), _) if withhold => {}
                    (Some(_), Behaviour::Silent) => {}
                    (Some(ack), Behaviour::AckInBursts(_)) => self.held.push((pkid, ack)),
                    (Some(ack), Behaviour::Behave | Behaviour::WithholdFirst) => {
                        self.write(&ack, out)?;
                        self.update(|stats| stats.acked.push(pkid));
                    }
                }
            }
            In::PubRel(pkid) => self.write(&Out::PubComp(pkid), out)?,
            In::PingReq => {
                self.update(|stats| stats.pings += 1);
                self.write(&Out::PingResp, out)?;
            }
            In::Subscribe { pkid, granted } => self.write(&Out::SubAck { pkid, granted }, out)?,
            In::Unsubscribe { pkid, filters } => {
                self.write(&Out::UnsubAck { pkid, filters }, out)?;
            }
            In::Disconnect(reason) => {
                return Ok(Next::Close(format!(
                    "DISCONNECT from the client ({reason})"
                )));
            }
            In::Connect { .. } => return Ok(Next::Close("a second CONNECT".to_owned())),
            In::Other => {}
        }
        Ok(Next::Continue)
    }

    /// Writes the held acknowledgements, in order.
    fn flush_held(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        for (_, ack) in &held {
            self.write(ack, out)?;
        }
        self.update(|stats| stats.acked.extend(held.iter().map(|(pkid, _)| *pkid)));
        Ok(())
    }
}
