//! A plain TCP full-mesh [`Transport`] for the benchmark (feature `tcp`).
//!
//! It provides ordering and reliability (TCP) and bounded waits, but **no authentication or
//! privacy**: use it on loopback only. The product's transport is the DID-bound WebRTC mesh.
//! Built on std threads, not an async runtime: one reader thread per peer feeds a bounded queue;
//! sends are blocking writes with a timeout. The engine's round structure keeps at most two
//! messages in flight per link, so the reader threads never block on a full queue for long and
//! two parties writing large messages to each other cannot deadlock.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::transport::{Transport, TransportError};

/// Largest frame accepted (bounds memory per peer).
pub const MAX_FRAME: usize = 256 << 20;

/// One party's end of a TCP mesh.
#[derive(Debug)]
pub struct TcpTransport {
    me: usize,
    writers: Vec<Option<TcpStream>>,
    readers: Vec<Option<Receiver<io::Result<Vec<u8>>>>>,
    timeout: Duration,
}

impl TcpTransport {
    /// Connects party `me` to all others: listens on `addrs[me]`, connects to lower-indexed
    /// parties (retrying until `timeout`), accepts higher-indexed ones, which announce their
    /// index first. `timeout` also bounds every later receive and send.
    pub fn connect(me: usize, addrs: &[SocketAddr], timeout: Duration) -> io::Result<Self> {
        let m = addrs.len();
        let listener = TcpListener::bind(addrs[me])?;
        let deadline = Instant::now() + timeout;
        let mut streams: Vec<Option<TcpStream>> = (0..m).map(|_| None).collect();
        for (j, addr) in addrs.iter().enumerate().take(me) {
            let mut s = loop {
                match TcpStream::connect(addr) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            };
            s.write_all(&(me as u32).to_le_bytes())?;
            streams[j] = Some(s);
        }
        listener.set_nonblocking(true)?;
        let mut pending = m - me - 1;
        while pending > 0 {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_read_timeout(Some(timeout))?;
                    let mut idx = [0u8; 4];
                    s.read_exact(&mut idx)?;
                    let j = u32::from_le_bytes(idx) as usize;
                    if j <= me || j >= m || streams[j].is_some() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("unexpected peer index {j}"),
                        ));
                    }
                    streams[j] = Some(s);
                    pending -= 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "peers did not connect",
                        ));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
        let mut writers = Vec::with_capacity(m);
        let mut readers = Vec::with_capacity(m);
        for s in streams {
            match s {
                None => {
                    writers.push(None);
                    readers.push(None);
                }
                Some(s) => {
                    s.set_nodelay(true)?;
                    s.set_write_timeout(Some(timeout))?;
                    // The reader blocks indefinitely; the bounded wait is in recv.
                    s.set_read_timeout(None)?;
                    let mut r = s.try_clone()?;
                    let (tx, rx) = sync_channel(16);
                    thread::spawn(move || loop {
                        let frame = read_frame(&mut r);
                        let stop = frame.is_err();
                        if tx.send(frame).is_err() || stop {
                            return;
                        }
                    });
                    writers.push(Some(s));
                    readers.push(Some(rx));
                }
            }
        }
        Ok(TcpTransport {
            me,
            writers,
            readers,
            timeout,
        })
    }
}

fn read_frame(r: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

impl Transport for TcpTransport {
    fn party_count(&self) -> usize {
        self.writers.len()
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        let parties = self.writers.len();
        let r = (|| {
            if msg.len() > MAX_FRAME {
                return Err(TransportError::TooLarge {
                    party: to,
                    len: msg.len(),
                    max: MAX_FRAME,
                });
            }
            let w = self
                .writers
                .get_mut(to)
                .and_then(Option::as_mut)
                .ok_or(TransportError::NoSuchParty { party: to, parties })?;
            let mut frame = Vec::with_capacity(4 + msg.len());
            frame.extend_from_slice(&(msg.len() as u32).to_le_bytes());
            frame.extend_from_slice(&msg);
            w.write_all(&frame)
                .map_err(|source| TransportError::Io { party: to, source })
        })();
        Box::pin(async move { r })
    }
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let parties = self.readers.len();
        let timeout = self.timeout;
        let r = match self.readers.get(from).and_then(Option::as_ref) {
            None => Err(TransportError::NoSuchParty {
                party: from,
                parties,
            }),
            Some(rx) => match rx.recv_timeout(timeout) {
                Ok(Ok(frame)) => Ok(frame),
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Err(TransportError::Closed { party: from })
                }
                Ok(Err(source)) => Err(TransportError::Io {
                    party: from,
                    source,
                }),
                Err(RecvTimeoutError::Timeout) => Err(TransportError::Timeout {
                    party: from,
                    after: timeout,
                }),
                Err(RecvTimeoutError::Disconnected) => Err(TransportError::Closed { party: from }),
            },
        };
        Box::pin(async move { r })
    }
}
