//! The MQTT 5 client's TCP socket, with its writes coalesced until the event loop waits.
//!
//! rumqttc-v5-next flushes after every control request it takes from its channel, and a
//! PUBACK to a source broker is a control request: without this socket every forwarded
//! message costs one 4-byte `writev` toward the source broker (and one wake-up of that broker),
//! the largest single cost of a forward on loopback. [`Corked`] keeps what the client writes
//! and flushes in a buffer and sends it when the event loop next reads the socket — which it
//! does whenever it has no more requests or packets at hand, before it waits, and when it waits
//! for any reply (CONNACK, the TLS handshake). The buffer is bounded ([`HIGH_WATER`]: beyond it
//! writes go out, and wait for the socket, as before), and it is sent on shutdown and, as far
//! as the socket takes it without waiting, when the socket is dropped.
//!
//! What a flush promised before is unchanged where it matters: a flushed packet is on its way
//! as soon as the event loop goes back to the socket, which the engine's poll task does after
//! every event (at the latest after its read-pause, [`MAX_PAUSE`]). Nothing the engine counts
//! as delivered depends on a flush: forwards settle on the destination's PUBACK.
//!
//! [`MAX_PAUSE`]: crate::engine::conn

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Above this many buffered bytes a write first sends what is buffered.
const HIGH_WATER: usize = 64 * 1024;

/// How long a connection attempt to one address runs alone before the next address is tried
/// beside it (RFC 8305's "Connection Attempt Delay"), as rumqttc's own connector does.
const STAGGER: Duration = Duration::from_millis(250);

/// A TCP stream whose writes wait in a buffer until the stream is read (see the module docs).
#[derive(Debug)]
pub(crate) struct Corked {
    inner: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    sent: usize,
}

impl Corked {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Corked {
            inner,
            buf: Vec::new(),
            sent: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Writes out the buffer.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The event loop reads when it has nothing more to write: send what waits first. A
        // full socket does not hold the read back (its readiness wakes this task again).
        if let Poll::Ready(Err(error)) = this.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buffered() + data.len() > HIGH_WATER {
            ready!(this.poll_send(cx))?;
            if data.len() > HIGH_WATER {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Deferred to the next read (see the module docs).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl Drop for Corked {
    fn drop(&mut self) {
        // A client that drops its connection right after a DISCONNECT: send it (and anything
        // before it) as far as the socket takes it now.
        while self.sent < self.buf.len() {
            match self.inner.try_write(&self.buf[self.sent..]) {
                Ok(n) if n > 0 => self.sent += n,
                _ => break,
            }
        }
    }
}

/// Connects to `host` ("name:port") with `TCP_NODELAY`, trying its addresses in turn and
/// starting the next one beside a slow attempt after [`STAGGER`] (happy eyeballs).
///
/// # Errors
/// The resolver's error, or the last address's connect error.
pub(crate) async fn connect(host: String) -> io::Result<Corked> {
    let mut addrs = tokio::net::lookup_host(host)
        .await?
        .collect::<Vec<SocketAddr>>()
        .into_iter();
    let mut attempts = JoinSet::new();
    let mut last_error = None;
    loop {
        if attempts.is_empty() {
            let Some(addr) = addrs.next() else { break };
            attempts.spawn(TcpStream::connect(addr));
        }
        let done = tokio::select! {
            done = attempts.join_next() => done,
            () = tokio::time::sleep(STAGGER), if addrs.len() > 0 => {
                if let Some(addr) = addrs.next() {
                    attempts.spawn(TcpStream::connect(addr));
                }
                continue;
            }
        };
        match done {
            Some(Ok(Ok(stream))) => {
                stream.set_nodelay(true)?;
                return Ok(Corked::new(stream));
            }
            Some(Ok(Err(error))) => last_error = Some(error),
            Some(Err(error)) => last_error = Some(io::Error::other(error)),
            None => {}
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the host name resolved to no address",
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (Corked, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(connect(addr.to_string()), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// Reads what the peer has been sent within 100 ms.
    async fn received(peer: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), peer.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        got
    }

    #[tokio::test]
    async fn flushed_writes_wait_for_the_next_read_and_then_go_out_together() {
        let (mut corked, mut peer) = pair().await;
        corked.write_all(b"one").await.unwrap();
        corked.flush().await.unwrap();
        corked.write_all(b"two").await.unwrap();
        corked.flush().await.unwrap();
        assert!(corked.inner.nodelay().unwrap());
        assert_eq!(received(&mut peer).await, b"");
        // A read sends what waits, then waits for the peer itself.
        let mut reply = [0u8; 5];
        let (read, sent) = tokio::join!(corked.read_exact(&mut reply), async {
            let got = received(&mut peer).await;
            peer.write_all(b"reply").await.unwrap();
            got
        });
        read.unwrap();
        assert_eq!(sent, b"onetwo");
        assert_eq!(&reply, b"reply");
    }

    #[tokio::test]
    async fn a_full_buffer_goes_out_without_a_read() {
        let (mut corked, mut peer) = pair().await;
        let big = vec![7u8; HIGH_WATER / 2 + 1];
        corked.write_all(&big).await.unwrap();
        corked.write_all(&big).await.unwrap();
        assert_eq!(received(&mut peer).await.len(), big.len());
        let huge = vec![9u8; HIGH_WATER * 2];
        let (written, got) = tokio::join!(corked.write_all(&huge), async {
            let mut got = 0;
            let mut chunk = vec![0u8; 65536];
            while got < big.len() + HIGH_WATER {
                got += peer.read(&mut chunk).await.unwrap();
            }
            got
        });
        written.unwrap();
        assert!(got >= big.len() + HIGH_WATER);
    }

    #[tokio::test]
    async fn shutdown_and_drop_send_what_waits() {
        let (mut corked, mut peer) = pair().await;
        corked.write_all(b"bye").await.unwrap();
        corked.flush().await.unwrap();
        corked.shutdown().await.unwrap();
        assert_eq!(received(&mut peer).await, b"bye");

        let (mut corked, mut peer) = pair().await;
        corked.write_all(b"disconnect").await.unwrap();
        corked.flush().await.unwrap();
        drop(corked);
        assert_eq!(received(&mut peer).await, b"disconnect");
    }

    #[tokio::test]
    async fn a_refused_address_is_an_error_of_its_own() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = connect(addr.to_string()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
