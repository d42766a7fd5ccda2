#![cfg(all(feature = "tcp", target_os = "linux"))]
#![allow(clippy::unwrap_used)]
//! The TCP transport allocates for a frame as its bytes arrive, not for the length a peer
//! announces: a header claiming 256 MiB, then a hang-up, costs about a megabyte. Its own test
//! binary, because it watches the whole process's address space (`VmPeak`: a large buffer is
//! mapped even while its zeroed pages are not touched, so resident memory would not show it).

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use mpc_core::tcp::{TcpTransport, MAX_FRAME};
use mpc_core::{Transport, TransportError};

/// The process's peak virtual memory, in bytes.
fn vm_peak() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb << 10
}

#[test]
fn an_announced_frame_length_is_not_allocated_before_its_bytes_arrive() {
    let ours = TcpListener::bind("127.0.0.1:0").unwrap();
    let theirs = TcpListener::bind("127.0.0.1:0").unwrap();
    let addrs = [ours.local_addr().unwrap(), theirs.local_addr().unwrap()];
    // Party 1 connects to party 0 (the lower index), says who it is, announces the largest
    // frame allowed, sends 10 bytes of it and hangs up.
    let peer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addrs[0]).unwrap();
        s.write_all(&1u32.to_le_bytes()).unwrap();
        s.write_all(&(MAX_FRAME as u32).to_le_bytes()).unwrap();
        s.write_all(&[7; 10]).unwrap();
    });
    let mut t =
        TcpTransport::connect_with_listener(0, ours, &addrs, Duration::from_secs(5)).unwrap();
    peer.join().unwrap();
    let before = vm_peak();
    let got = futures::executor::block_on(t.recv(1));
    assert!(
        matches!(got, Err(TransportError::Closed { party: 1 })),
        "{got:?}"
    );
    let grown = vm_peak().saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "the address space grew by {grown} bytes for a frame of which 10 bytes arrived"
    );
    drop(theirs);
}
