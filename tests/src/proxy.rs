//! A TCP proxy for fault tests: it forwards bytes between clients and an upstream, and on
//! command blackholes traffic (a silent network partition: connections stay open, nothing gets
//! through, only keep-alive can notice), refuses new connections, or cuts the open ones.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    thread,
    time::Duration,
};

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward bytes both ways.
    Pass = 0,
    /// Read and drop every byte both ways; accept new connections but connect them nowhere.
    Blackhole = 1,
    /// Close new connections at once.
    Refuse = 2,
}

/// A running proxy on 127.0.0.1; stopped (and its connections closed) on drop.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    ///
    /// # Errors
    /// When no port can be bound.
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let proxy = Self {
            addr: listener.local_addr()?,
            mode: Arc::new(AtomicU8::new(Mode::Pass as u8)),
            stop: Arc::default(),
            open: Arc::default(),
        };
        let (mode, stop, open) = (
            Arc::clone(&proxy.mode),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.open),
        );
        thread::spawn(move || accept_loop(&listener, upstream, &mode, &stop, &open));
        Ok(proxy)
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what happens to traffic from now on (open connections included).
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Closes every open connection (both sides see a reset or EOF).
    pub fn cut(&self) {
        if let Ok(mut open) = self.open.lock() {
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

fn mode_of(mode: &AtomicU8) -> Mode {
    match mode.load(Ordering::SeqCst) {
        1 => Mode::Blackhole,
        2 => Mode::Refuse,
        _ => Mode::Pass,
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    mode: &Arc<AtomicU8>,
    stop: &Arc<AtomicBool>,
    open: &Arc<Mutex<Vec<TcpStream>>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let _ = client.set_nonblocking(false);
        match mode_of(mode) {
            Mode::Refuse => {
                let _ = client.shutdown(Shutdown::Both);
            }
            Mode::Blackhole => {
                remember(open, &client);
                let mode = Arc::clone(mode);
                thread::spawn(move || pump(client, None, &mode));
            }
            Mode::Pass => {
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                remember(open, &client);
                remember(open, &server);
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (m1, m2) = (Arc::clone(mode), Arc::clone(mode));
                thread::spawn(move || pump(client, Some(s2), &m1));
                thread::spawn(move || pump(server, Some(c2), &m2));
            }
        }
    }
}

fn remember(open: &Mutex<Vec<TcpStream>>, stream: &TcpStream) {
    if let (Ok(mut open), Ok(clone)) = (open.lock(), stream.try_clone()) {
        open.push(clone);
    }
}

/// Copies `from` to `to` while the mode is `Pass`; drops the bytes otherwise.
fn pump(mut from: TcpStream, mut to: Option<TcpStream>, mode: &AtomicU8) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if mode_of(mode) != Mode::Pass {
            continue;
        }
        if let Some(to) = to.as_mut()
            && to.write_all(&buffer[..n]).is_err()
        {
            break;
        }
    }
    if let Some(to) = to {
        let _ = to.shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_blackholes_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        thread::spawn(move || {
            for stream in echo.incoming().flatten() {
                thread::spawn(move || {
                    let mut s = stream;
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = TcpProxy::start(upstream).unwrap();
        let mut client = TcpStream::connect(proxy.addr()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        client.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        client.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        proxy.set_mode(Mode::Blackhole);
        client.write_all(b"lost").unwrap();
        assert!(
            client.read_exact(&mut b).is_err(),
            "nothing comes back in a blackhole"
        );
        proxy.set_mode(Mode::Pass);
        proxy.cut();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        proxy.set_mode(Mode::Refuse);
        let mut refused = TcpStream::connect(proxy.addr()).unwrap();
        refused
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(matches!(refused.read(&mut b), Ok(0) | Err(_)));
    }
}
