//! A loopback TCP proxy that can freeze: it stops forwarding in both directions but keeps
//! both sockets open, as a host that vanished without a reset looks to its peers. Shared by
//! the broker's and the node's tests (the node includes it by path).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long a frozen pipe holds its bytes and sockets: every test is over long before.
const FROZEN_FOR: Duration = Duration::from_secs(120);

pub struct FreezingProxy {
    pub port: u16,
    /// Every connection, present and future, is frozen.
    frozen: Arc<AtomicBool>,
    /// Connections accepted before this count are frozen.
    cut: Arc<AtomicUsize>,
    /// The one connection (by accept order, from 0) frozen by [`Self::freeze_only`].
    only: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    /// Client connections whose client side has not hung up.
    pub live: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    /// Forwards a fresh loopback port to `upstream` on loopback.
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicUsize::new(0));
        let only = Arc::new(AtomicUsize::new(usize::MAX));
        let accepted = Arc::new(AtomicUsize::new(0));
        let live = Arc::new(AtomicUsize::new(0));
        let (f, c, o, a, l) = (
            frozen.clone(),
            cut.clone(),
            only.clone(),
            accepted.clone(),
            live.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let index = a.fetch_add(1, Ordering::SeqCst);
                let is_frozen = {
                    let (f, c, o) = (f.clone(), c.clone(), o.clone());
                    move || {
                        f.load(Ordering::SeqCst)
                            || index < c.load(Ordering::SeqCst)
                            || index == o.load(Ordering::SeqCst)
                    }
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                l.fetch_add(1, Ordering::SeqCst);
                let (frozen_up, l2) = (is_frozen.clone(), l.clone());
                tokio::spawn(async move {
                    pipe(cr, sw, frozen_up).await;
                    l2.fetch_sub(1, Ordering::SeqCst);
                });
                tokio::spawn(pipe(sr, cw, is_frozen));
            }
        });
        FreezingProxy {
            port,
            frozen,
            cut,
            only,
            accepted,
            live,
            task,
        }
    }

    /// Freezes every connection, including those made from now on.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Freezes the connections made so far; later ones are forwarded.
    pub fn freeze_current(&self) {
        self.cut
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl FreezingProxy {
    /// Freezes connection `index` (in accept order, from 0) alone.
    pub fn freeze_only(&self, index: usize) {
        self.only.store(index, Ordering::SeqCst);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: impl Fn() -> bool,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen() {
            tokio::time::sleep(FROZEN_FOR).await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
