//! A plain TCP full-mesh [`Transport`] for the benchmark (feature `tcp`).
//!
//! It provides ordering and reliability (TCP) and bounded waits, but **no authentication or
//! privacy**: use it on loopback only. The product's transport is the DID-bound WebRTC mesh.
//!
//! Built on std, without an async runtime, and tuned for round latency, which is what small MPC
//! programs are bound by:
//! - `TCP_NODELAY`, and one `write` per message (length prefix and payload in one buffer), so a
//!   message leaves at once in one segment;
//! - receives are blocking reads on the socket in the caller's thread (through a buffer that
//!   usually takes a whole message in one `read`), with the socket's read timeout bounding every
//!   wait. A reader thread per peer would add a thread wake-up and a channel hand-off to every
//!   message, which on a loaded machine costs more than the message itself.
//! - small messages are written directly by the caller. A blocking write cannot deadlock here:
//!   the engine's rounds keep at most two messages in flight per link (see `runtime`), and a
//!   party can be blocked writing to a peer only while that peer is behind it in rounds, so no
//!   cycle of blocked writers exists — *provided one message fits in the socket buffers*. Large
//!   messages ([`DIRECT_WRITE_MAX`] bytes and up) therefore go to a per-peer writer thread,
//!   started on first use, behind a bounded queue; once it holds anything, every later message
//!   to that peer queues behind it, to keep the order.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::transport::{Transport, TransportError};

/// Largest frame accepted (bounds memory per peer).
pub const MAX_FRAME: usize = 256 << 20;

/// A frame being received grows by at most this much before its bytes arrive.
const RECV_GROWTH: usize = 1 << 20;

/// Messages shorter than this are written by the caller. They fit in a socket's buffers many
/// times over (Linux's default TCP receive buffer is 128 KiB), which is what makes a blocking
/// write safe (see the module docs).
pub const DIRECT_WRITE_MAX: usize = 16 << 10;

/// Messages a writer thread may hold. The engine keeps at most two in flight per link, so a full
/// queue means the peer stopped reading.
const WRITE_QUEUE: usize = 4;

/// Read buffer per peer: large enough that a typical round's message arrives in one `read`.
const READ_BUFFER: usize = 64 << 10;

/// The background writer for large messages to one peer.
#[derive(Debug)]
struct WriterThread {
    queue: SyncSender<Vec<u8>>,
    /// Frames queued or being written; the caller writes directly only when this is zero.
    pending: Arc<AtomicUsize>,
    handle: JoinHandle<()>,
}

#[derive(Debug)]
struct Peer {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
    writer: Option<WriterThread>,
    /// Set once a read failed mid-frame or the writer thread gave up: the link's byte stream is
    /// no longer in step, so every later call reports the link as closed.
    broken: bool,
}

/// One party's end of a TCP mesh.
#[derive(Debug)]
pub struct TcpTransport {
    me: usize,
    peers: Vec<Option<Peer>>,
    timeout: Duration,
}

impl TcpTransport {
    /// Connects party `me` to all others: listens on `addrs[me]`, connects to lower-indexed
    /// parties (retrying until `timeout`), accepts higher-indexed ones, which announce their
    /// index first. `timeout` also bounds every later receive and send.
    pub fn connect(me: usize, addrs: &[SocketAddr], timeout: Duration) -> io::Result<Self> {
        let addr = addrs.get(me).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "party index out of range")
        })?;
        let listener = TcpListener::bind(addr)?;
        Self::connect_with_listener(me, listener, addrs, timeout)
    }

    /// As [`TcpTransport::connect`], with our listener already bound (for instance to port 0, so
    /// that tests can use ephemeral ports: bind all listeners first, then exchange their
    /// `local_addr`s). `addrs[me]` is not used.
    pub fn connect_with_listener(
        me: usize,
        listener: TcpListener,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> io::Result<Self> {
        let m = addrs.len();
        if me >= m {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "party index out of range",
            ));
        }
        let deadline = Instant::now() + timeout;
        let mut streams: Vec<Option<TcpStream>> = (0..m).map(|_| None).collect();
        for (j, addr) in addrs.iter().enumerate().take(me) {
            let mut s = loop {
                match TcpStream::connect_timeout(addr, timeout) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > deadline => return Err(e),
                    // The peer's process may not be listening yet.
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            };
            s.set_write_timeout(Some(timeout))?;
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
        let mut peers = Vec::with_capacity(m);
        for s in streams {
            peers.push(match s {
                None => None,
                Some(s) => {
                    s.set_nodelay(true)?;
                    s.set_write_timeout(Some(timeout))?;
                    s.set_read_timeout(Some(timeout))?;
                    Some(Peer {
                        reader: BufReader::with_capacity(READ_BUFFER, s.try_clone()?),
                        stream: s,
                        writer: None,
                        broken: false,
                    })
                }
            });
        }
        Ok(TcpTransport { me, peers, timeout })
    }

    fn peer(&mut self, party: usize) -> Result<&mut Peer, TransportError> {
        let parties = self.peers.len();
        let peer = self
            .peers
            .get_mut(party)
            .and_then(Option::as_mut)
            .ok_or(TransportError::NoSuchParty { party, parties })?;
        if peer.broken {
            return Err(TransportError::Closed { party });
        }
        Ok(peer)
    }

    fn send_now(&mut self, to: usize, msg: &[u8]) -> Result<(), TransportError> {
        if msg.len() > MAX_FRAME {
            return Err(TransportError::TooLarge {
                party: to,
                len: msg.len(),
                max: MAX_FRAME,
            });
        }
        let peer = self.peer(to)?;
        let mut frame = Vec::with_capacity(4 + msg.len());
        frame.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        frame.extend_from_slice(msg);
        let queued = peer
            .writer
            .as_ref()
            .is_some_and(|w| w.pending.load(Ordering::Acquire) > 0);
        if !queued && frame.len() < DIRECT_WRITE_MAX {
            return peer.stream.write_all(&frame).map_err(|source| {
                // Part of the frame may have gone out: the stream is out of step.
                peer.broken = true;
                match source.kind() {
                    // The write timeout expired: the peer stopped reading.
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        TransportError::Backpressure { party: to }
                    }
                    _ => io_error(to, source),
                }
            });
        }
        if peer.writer.is_none() {
            let stream = peer
                .stream
                .try_clone()
                .map_err(|source| io_error(to, source))?;
            peer.writer = Some(spawn_writer(stream));
        }
        let Some(w) = peer.writer.as_ref() else {
            return Err(TransportError::Closed { party: to });
        };
        w.pending.fetch_add(1, Ordering::AcqRel);
        match w.queue.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                w.pending.fetch_sub(1, Ordering::AcqRel);
                match e {
                    TrySendError::Full(_) => Err(TransportError::Backpressure { party: to }),
                    // The thread exits only after a failed write.
                    TrySendError::Disconnected(_) => {
                        peer.broken = true;
                        Err(TransportError::Closed { party: to })
                    }
                }
            }
        }
    }

    fn recv_now(&mut self, from: usize) -> Result<Vec<u8>, TransportError> {
        let timeout = self.timeout;
        let peer = self.peer(from)?;
        let deadline = Instant::now() + timeout;
        let r = (|| {
            let mut len = [0u8; 4];
            read_exact_until(&mut peer.reader, &mut len, deadline)?;
            let len = u32::from_le_bytes(len) as usize;
            if len > MAX_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame too large",
                ));
            }
            // The length is the peer's word: grow with the bytes that arrive rather than
            // allocating up to MAX_FRAME for a header alone.
            let mut buf = Vec::new();
            while buf.len() < len {
                let start = buf.len();
                buf.resize(start + (len - start).min(RECV_GROWTH), 0);
                read_exact_until(&mut peer.reader, &mut buf[start..], deadline)?;
            }
            Ok(buf)
        })();
        r.map_err(|source| {
            // Whatever went wrong, the rest of this stream can no longer be parsed.
            peer.broken = true;
            match source.kind() {
                io::ErrorKind::UnexpectedEof => TransportError::Closed { party: from },
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransportError::Timeout {
                    party: from,
                    after: timeout,
                },
                _ => io_error(from, source),
            }
        })
    }
}

fn io_error(party: usize, source: io::Error) -> TransportError {
    match source.kind() {
        io::ErrorKind::UnexpectedEof => TransportError::Closed { party },
        _ => TransportError::Io { party, source },
    }
}

/// `read_exact` that gives up at `deadline`. Each `read` is bounded by the socket's read timeout
/// (the transport's timeout), so a peer trickling bytes is cut off within twice the timeout.
fn read_exact_until(
    r: &mut BufReader<TcpStream>,
    mut buf: &mut [u8],
    deadline: Instant,
) -> io::Result<()> {
    while !buf.is_empty() {
        if buf.len() > r.buffer().len() && Instant::now() > deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match r.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn spawn_writer(mut s: TcpStream) -> WriterThread {
    let (queue, rx) = sync_channel::<Vec<u8>>(WRITE_QUEUE);
    let pending = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&pending);
    let handle = thread::spawn(move || {
        for frame in rx {
            let ok = s.write_all(&frame).is_ok();
            count.fetch_sub(1, Ordering::AcqRel);
            if !ok {
                // Dropping the receiver makes the next send report the link as closed; the
                // peer's side sees the failure on its reads.
                return;
            }
        }
    });
    WriterThread {
        queue,
        pending,
        handle,
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        // Let queued large messages reach the peers before the sockets close: the last round's
        // messages may still be in a writer's queue. Each write is bounded by the write timeout.
        for peer in self.peers.iter_mut().flatten() {
            if let Some(w) = peer.writer.take() {
                drop(w.queue);
                let _ = w.handle.join();
            }
        }
    }
}

impl Transport for TcpTransport {
    fn party_count(&self) -> usize {
        self.peers.len()
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(&mut self, to: usize, msg: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        let r = self.send_now(to, &msg);
        Box::pin(async move { r })
    }
    fn recv(&mut self, from: usize) -> BoxFuture<'_, Result<Vec<u8>, TransportError>> {
        let r = self.recv_now(from);
        Box::pin(async move { r })
    }
}
