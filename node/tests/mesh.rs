//! The DID-bound WebRTC mesh over real peer connections on loopback, with an in-memory
//! signaling relay that can alter messages in flight (a malicious broker).
//!
//! Every test builds real `webrtc` peer connections (ICE, DTLS, SCTP) between parties of one
//! process; only the signaling relay is simulated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use identity::Keypair;
use mpc_core::{run_program, Program, ProgramError, ProgramOutput, RuntimeConfig, Transport};
use node::mesh::{
    connect, ChannelBinding, Fingerprint, FingerprintSource, Mesh, MeshConfig, MeshError,
    MeshRoster, PeerRef, SignalKind, SignalMessage, Signaling,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Seeds of the parties' DID keys, in roster order.
const SEEDS: [u8; 3] = [2, 3, 4];

fn keypair(seed: u8) -> Keypair {
    Keypair::from_seed(&[seed; 32])
}

fn roster(session: &str, seeds: &[u8]) -> MeshRoster {
    MeshRoster {
        session: session.to_owned(),
        roster_hash: Sha256::digest(session.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        parties: seeds.iter().map(|&s| keypair(s).did()).collect(),
    }
}

fn config() -> MeshConfig {
    MeshConfig {
        udp_addrs: vec!["127.0.0.1:0".into()],
        phase_timeout: Duration::from_secs(10),
        recv_timeout: Duration::from_secs(10),
        ..MeshConfig::default()
    }
}

/// Alters a message `from` sends (a malicious broker).
type Tamper = Arc<dyn Fn(usize, &mut SignalMessage) + Send + Sync>;
/// Every message as its sender sent it: `(from, message addressed by recipient)`.
type Log = Arc<Mutex<Vec<(usize, SignalMessage)>>>;

/// An in-memory broker: per party a pair of bounded channels; it stamps the sender (as the
/// broker does with the authenticated DID) and applies `tamper` in flight.
fn relay(n: usize, tamper: Option<Tamper>) -> (Vec<Signaling>, Log) {
    let log: Log = Arc::default();
    let mut signalings = Vec::new();
    let mut outbound = Vec::new();
    let mut inbound_tx = Vec::new();
    for _ in 0..n {
        let (otx, orx) = mpsc::channel(256);
        let (itx, irx) = mpsc::channel(256);
        signalings.push(Signaling {
            outbound: otx,
            inbound: irx,
        });
        outbound.push(orx);
        inbound_tx.push(itx);
    }
    for (from, mut rx) in outbound.into_iter().enumerate() {
        let (txs, tamper, log) = (inbound_tx.clone(), tamper.clone(), Arc::clone(&log));
        tokio::spawn(async move {
            while let Some(mut msg) = rx.recv().await {
                log.lock().unwrap().push((from, msg.clone()));
                if let Some(t) = &tamper {
                    t(from, &mut msg);
                }
                let to = msg.peer;
                msg.peer = from;
                if let Some(tx) = txs.get(to) {
                    let _ = tx.send(msg).await;
                }
            }
        });
    }
    (signalings, log)
}

/// Connects every party concurrently; returns each party's result (and keeps its signaling
/// alive with it).
async fn connect_parties(
    roster: &MeshRoster,
    seeds: &[u8],
    config: &MeshConfig,
    tamper: Option<Tamper>,
) -> (Vec<(Result<Mesh, MeshError>, Signaling)>, Log) {
    let (signalings, log) = relay(seeds.len(), tamper);
    let tasks: Vec<_> = signalings
        .into_iter()
        .zip(seeds.iter().copied())
        .map(|(mut sig, seed)| {
            let (roster, config) = (roster.clone(), config.clone());
            tokio::spawn(async move {
                let res = connect(&keypair(seed), &roster, &config, &mut sig).await;
                (res, sig)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, log)
}

fn meshes(results: Vec<(Result<Mesh, MeshError>, Signaling)>) -> Vec<Mesh> {
    results
        .into_iter()
        .map(|(r, _)| r.expect("mesh should come up"))
        .collect()
}

/// Party `i`'s error. (Whether a third party, whose own pairs are honest, finished its mesh
/// before the victim's `bye` reached it is a race; it fails at its first message to the victim.)
fn failure(results: &[(Result<Mesh, MeshError>, Signaling)], i: usize) -> &MeshError {
    match &results[i].0 {
        Ok(_) => panic!("party {i} built a mesh despite the attack"),
        Err(e) => e,
    }
}

fn is_offer(from: usize, to: usize, m: &SignalMessage, f: usize) -> bool {
    from == f && m.peer == to && m.kind == SignalKind::Offer
}

fn rewrite_sdp_fingerprints(msg: &mut SignalMessage, fp: &Fingerprint) {
    let sdp = msg.payload["sdp"].as_str().unwrap().to_owned();
    let lines: Vec<String> = sdp
        .lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                format!("a=fingerprint:{fp}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(
        sdp.contains("a=fingerprint:"),
        "the offer has a fingerprint"
    );
    msg.payload["sdp"] = json!(lines.join("\r\n") + "\r\n");
}

fn signed_fingerprint(binding: &Value) -> Fingerprint {
    Fingerprint::parse(binding["fingerprint"].as_str().unwrap()).unwrap()
}

fn peer(roster: &MeshRoster, index: usize) -> PeerRef {
    PeerRef {
        index,
        did: roster.parties[index].clone(),
    }
}

fn assert_fingerprint_error(err: &MeshError, from: usize, expected: FingerprintSource) {
    match err {
        MeshError::FingerprintMismatch {
            peer, source_of, ..
        } => {
            assert_eq!(peer.index, from, "{err}");
            assert_eq!(*source_of, expected, "{err}");
        }
        other => panic!("expected a fingerprint mismatch, got: {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("fingerprint mismatch with peer #{from}")),
        "{err}"
    );
}

async fn run(mesh: &mut Mesh, name: &str, params: Value, inputs: &[i64]) -> ProgramOutput {
    let program = Program::from_name(name, &params).unwrap();
    let rng = ChaCha20Rng::seed_from_u64(7 + mesh.party_index() as u64);
    run_program(&program, inputs, mesh, rng, &RuntimeConfig::default())
        .await
        .unwrap()
        .output
}

#[tokio::test(flavor = "multi_thread")]
async fn three_parties_verify_the_mesh_and_compute_sum_and_secret_santa() {
    let roster = roster("meshTestSession01", &SEEDS);
    let started = Instant::now();
    let (results, _) = connect_parties(&roster, &SEEDS, &config(), None).await;
    let mesh_time = started.elapsed();
    let meshes = meshes(results);
    for m in &meshes {
        assert_eq!(m.party_count(), 3);
        let peers = m.peers();
        assert_eq!(peers.len(), 2);
        for p in &peers {
            eprintln!(
                "party {} verified peer {} in {:?}",
                m.party_index(),
                p.peer,
                p.setup
            );
            // What we verified for a peer is what that peer uses.
            assert_eq!(p.fingerprint, meshes[p.peer.index].local_fingerprint());
        }
    }
    eprintln!("3-party mesh verified in {mesh_time:?}");

    let inputs: Vec<Vec<i64>> = vec![vec![5, -2], vec![40], vec![1000, 7, -100]];
    let tasks: Vec<_> = meshes
        .into_iter()
        .enumerate()
        .map(|(i, mut mesh)| {
            let inputs = inputs[i].clone();
            tokio::spawn(async move {
                let sum = run(&mut mesh, "sum", Value::Null, &inputs).await;
                let santa = run(&mut mesh, "secret-santa", Value::Null, &[]).await;
                mesh.close().await;
                (sum, santa)
            })
        })
        .collect();
    let mut receivers = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (sum, santa) = t.await.unwrap();
        assert_eq!(sum, ProgramOutput::Sum { count: 6, sum: 950 });
        let ProgramOutput::SecretSanta { n, assignments } = santa else {
            panic!("wrong output {santa:?}")
        };
        assert_eq!(n, 3);
        // Reveal::Own: party i learns exactly the assignee of its own person i.
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].giver, i);
        assert_ne!(assignments[0].receiver, i);
        receivers.push(assignments[0].receiver);
    }
    receivers.sort_unstable();
    assert_eq!(receivers, vec![0, 1, 2], "a derangement is a permutation");
}

/// Pair setup time on loopback (the ICE check interval is what makes it fast), large
/// messages across many frames, and a small round trip.
#[tokio::test(flavor = "multi_thread")]
async fn two_parties_set_up_fast_and_carry_large_messages() {
    let seeds = [2, 3];
    let mut setups = Vec::new();
    for round in 0..3 {
        let roster = roster(&format!("meshTimingSession{round}"), &seeds);
        let started = Instant::now();
        let (results, _) = connect_parties(&roster, &seeds, &config(), None).await;
        setups.push(started.elapsed());
        for m in meshes(results) {
            m.close().await;
        }
    }
    setups.sort();
    eprintln!("pair setup (connect to verified), 3 runs: {setups:?}");
    assert!(
        setups[1] < Duration::from_millis(1500),
        "median pair setup {:?}",
        setups[1]
    );

    let roster = roster("meshBulkSession01", &seeds);
    let (results, _) = connect_parties(&roster, &seeds, &config(), None).await;
    let mut ms = meshes(results);
    let mut b = ms.pop().unwrap();
    let mut a = ms.pop().unwrap();
    let big: Vec<u8> = (0..(8usize << 20))
        .map(|i| (i * 7 + i / 65_536) as u8)
        .collect();
    let sizes = [0usize, 1, 65_527, 65_536, 200_003];
    let echo = tokio::spawn(async move {
        for _ in 0..sizes.len() + 1 {
            let m = b.recv(0).await.unwrap();
            b.send(0, m).await.unwrap();
        }
        for _ in 0..50 {
            let m = b.recv(0).await.unwrap();
            b.send(0, m).await.unwrap();
        }
        b
    });
    for &n in &sizes {
        a.send(1, big[..n].to_vec()).await.unwrap();
        assert_eq!(a.recv(1).await.unwrap(), &big[..n]);
    }
    let started = Instant::now();
    a.send(1, big.clone()).await.unwrap();
    let back = a.recv(1).await.unwrap();
    let elapsed = started.elapsed();
    assert!(back == big, "8 MiB message came back altered");
    eprintln!(
        "8 MiB there and back in {elapsed:?} ({:.0} MB/s each way)",
        2.0 * big.len() as f64 / elapsed.as_secs_f64() / 1e6
    );
    let mut rtts = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        a.send(1, vec![0x5a; 64]).await.unwrap();
        a.recv(1).await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    eprintln!("64-byte round trip: median {:?}", rtts[25]);
    // Too large for the configured limit: refused locally, naming the peer.
    let err = a.send(1, vec![0; (64 << 20) + 1]).await.unwrap_err();
    assert!(
        matches!(err, mpc_core::TransportError::TooLarge { party: 1, .. }),
        "{err}"
    );
    let b = echo.await.unwrap();
    tokio::join!(a.close(), b.close());
}

/// (b) The relay rewrites the DTLS fingerprint in party 0's offer to party 1: party 1 aborts
/// before applying the SDP, naming peer #0; nobody gets a mesh.
#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_sdp_fingerprint_aborts_naming_the_peer() {
    let roster = roster("meshTamperSdp0001", &SEEDS);
    let fake = Fingerprint::from_bytes([0xEE; 32]);
    let tamper: Tamper = Arc::new(move |from, m| {
        if is_offer(from, 1, m, 0) {
            rewrite_sdp_fingerprints(m, &fake);
        }
    });
    let (results, _) = connect_parties(&roster, &SEEDS, &config(), Some(tamper)).await;
    assert_fingerprint_error(failure(&results, 1), 0, FingerprintSource::Sdp);
    // Party 1 told party 0 why it stopped.
    let err0 = failure(&results, 0);
    assert!(
        matches!(err0, MeshError::PeerClosed { peer, reason: Some(r), .. }
            if peer.index == 1 && r.contains("fingerprint_mismatch")),
        "{err0}"
    );
    eprintln!("party 0: {err0}\nparty 1: {}", failure(&results, 1));
}

/// (c) The relay swaps party 0's binding for one 0 signed in another session (same keys,
/// genuine signature): party 1 refuses it as a binding for another session.
#[tokio::test(flavor = "multi_thread")]
async fn a_binding_from_another_session_aborts() {
    let roster = roster("meshTamperSession", &SEEDS);
    let other = roster.clone();
    let tamper: Tamper = Arc::new(move |from, m| {
        if is_offer(from, 1, m, 0) {
            let swapped = ChannelBinding {
                session: "aDifferentSession".into(),
                roster_hash: other.roster_hash.clone(),
                from: peer(&other, 0),
                to: peer(&other, 1),
                fingerprint: signed_fingerprint(&m.payload["binding"]),
            }
            .sign(&keypair(SEEDS[0]), SystemTime::now())
            .unwrap();
            m.payload["binding"] = swapped;
        }
    });
    let (results, _) = connect_parties(&roster, &SEEDS, &config(), Some(tamper)).await;
    let err = failure(&results, 1);
    assert!(
        matches!(err, MeshError::BindingForAnotherSession { peer, field: "session", .. }
            if peer.index == 0),
        "{err}"
    );
}

/// (d) A binding recorded in an earlier session of the same parties, replayed: refused as a
/// binding for another session; and if the broker reused the session id and roster, the
/// fresh per-session certificate makes it a fingerprint mismatch.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_binding_aborts() {
    let earlier = roster("meshEarlierSession", &SEEDS);
    let (results, log) = connect_parties(&earlier, &SEEDS, &config(), None).await;
    for m in meshes(results) {
        m.close().await;
    }
    let recorded = log
        .lock()
        .unwrap()
        .iter()
        .find(|(from, m)| is_offer(*from, 1, m, 0))
        .map(|(_, m)| m.payload["binding"].clone())
        .unwrap();

    let replay = |binding: Value| -> Tamper {
        Arc::new(move |from, m| {
            if is_offer(from, 1, m, 0) {
                m.payload["binding"] = binding.clone();
            }
        })
    };
    let later = roster("meshLaterSession01", &SEEDS);
    let (results, _) =
        connect_parties(&later, &SEEDS, &config(), Some(replay(recorded.clone()))).await;
    let err = failure(&results, 1);
    assert!(
        matches!(err, MeshError::BindingForAnotherSession { peer, field: "session", .. }
            if peer.index == 0),
        "{err}"
    );

    // Same session id and roster hash again: the binding verifies, but it is for last run's
    // certificate.
    let (results, _) = connect_parties(&earlier, &SEEDS, &config(), Some(replay(recorded))).await;
    assert_fingerprint_error(failure(&results, 1), 0, FingerprintSource::Sdp);
}

/// (e) A binding with a valid signature by the peer's DID key, but for a certificate the peer
/// does not use. With the SDP left alone, the SDP check catches it; with the SDP rewritten to
/// match (a broker holding a leaked binding, or a peer lying about its certificate), the
/// certificate seen in the DTLS handshake does.
#[tokio::test(flavor = "multi_thread")]
async fn a_valid_binding_for_another_certificate_aborts() {
    let roster = roster("meshTamperCertificate", &SEEDS);
    let other_cert = Fingerprint::from_bytes([0x42; 32]);
    let forge = |rewrite_sdp: bool| -> Tamper {
        let roster = roster.clone();
        Arc::new(move |from, m| {
            if is_offer(from, 1, m, 0) {
                m.payload["binding"] = ChannelBinding {
                    session: roster.session.clone(),
                    roster_hash: roster.roster_hash.clone(),
                    from: peer(&roster, 0),
                    to: peer(&roster, 1),
                    fingerprint: other_cert,
                }
                .sign(&keypair(SEEDS[0]), SystemTime::now())
                .unwrap();
                if rewrite_sdp {
                    rewrite_sdp_fingerprints(m, &other_cert);
                }
            }
        })
    };
    let (results, _) = connect_parties(&roster, &SEEDS, &config(), Some(forge(false))).await;
    assert_fingerprint_error(failure(&results, 1), 0, FingerprintSource::Sdp);

    let (results, _) = connect_parties(&roster, &SEEDS, &config(), Some(forge(true))).await;
    assert_fingerprint_error(failure(&results, 1), 0, FingerprintSource::Dtls);
    eprintln!("party 1: {}", failure(&results, 1));
    assert!(failure(&results, 0).peer().is_some_and(|p| p.index == 1));
}

/// A binding "from party 0" signed by the relay's own key is refused end to end. (A forged
/// transcript needs a lying peer, since the relay never sees the data channel: unit tests cover
/// it.)
#[tokio::test(flavor = "multi_thread")]
async fn a_binding_signed_by_someone_else_aborts() {
    let roster = roster("meshTamperSigner01", &SEEDS);
    let r = roster.clone();
    let tamper: Tamper = Arc::new(move |from, m| {
        if is_offer(from, 1, m, 0) {
            // The broker signs a binding "from party 0" with its own key.
            let body = ChannelBinding {
                session: r.session.clone(),
                roster_hash: r.roster_hash.clone(),
                from: peer(&r, 0),
                to: peer(&r, 1),
                fingerprint: signed_fingerprint(&m.payload["binding"]),
            }
            .body();
            m.payload["binding"] = identity::statement::sign(
                &keypair(9),
                "MpcChannelBinding",
                &body,
                SystemTime::now(),
            )
            .unwrap();
        }
    });
    let (results, _) = connect_parties(&roster, &SEEDS, &config(), Some(tamper)).await;
    let err = failure(&results, 1);
    assert!(
        matches!(err, MeshError::BadBindingSignature { peer, .. } if peer.index == 0),
        "{err}"
    );
}

/// A transport that crashes its party after `sends_left` messages: the mesh is dropped
/// mid-protocol, without a goodbye (as when the node errors out or panics).
struct CrashAfter {
    mesh: Option<Mesh>,
    sends_left: usize,
    me: usize,
    parties: usize,
}

impl Transport for CrashAfter {
    fn party_count(&self) -> usize {
        self.parties
    }
    fn party_index(&self) -> usize {
        self.me
    }
    fn send(
        &mut self,
        to: usize,
        msg: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, Result<(), mpc_core::TransportError>> {
        if self.sends_left == 0 {
            self.mesh = None;
        }
        self.sends_left = self.sends_left.saturating_sub(1);
        match self.mesh.as_mut() {
            Some(m) => m.send(to, msg),
            None => Box::pin(async move { Err(mpc_core::TransportError::Closed { party: to }) }),
        }
    }
    fn recv(
        &mut self,
        from: usize,
    ) -> futures::future::BoxFuture<'_, Result<Vec<u8>, mpc_core::TransportError>> {
        match self.mesh.as_mut() {
            Some(m) => m.recv(from),
            None => Box::pin(async move { Err(mpc_core::TransportError::Closed { party: from }) }),
        }
    }
}

/// (f) A peer that crashes mid-run (its connections dropped without a goodbye) or goes silent:
/// the others' computation fails naming it — at once for the crash, after the receive timeout
/// for the silence.
#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_or_silent_peer_is_named_within_the_timeout() {
    let recv_timeout = Duration::from_secs(3);
    let cfg = MeshConfig {
        recv_timeout,
        ..config()
    };
    for crash in [true, false] {
        let roster = roster(&format!("meshDropSession{}", u8::from(crash)), &SEEDS);
        let (results, _) = connect_parties(&roster, &SEEDS, &cfg, None).await;
        let mut ms = meshes(results);
        let quitter = ms.pop().unwrap();
        let started = Instant::now();
        // Party 2 either takes part for a few messages and then crashes, or never sends.
        let quitter_task = tokio::spawn(async move {
            if crash {
                let mut t = CrashAfter {
                    mesh: Some(quitter),
                    // Two whole rounds (one message to each of 2 peers per round), then it
                    // crashes as round 3 starts. (Crashing mid-round would let the survivor
                    // that noticed first stop, and the other could rightly blame *it*.)
                    sends_left: 4,
                    me: 2,
                    parties: 3,
                };
                let program = Program::from_name("secret-santa", &Value::Null).unwrap();
                let rng = ChaCha20Rng::seed_from_u64(3);
                let res = run_program(&program, &[], &mut t, rng, &RuntimeConfig::default()).await;
                assert!(res.is_err(), "the crashing party cannot finish");
                None
            } else {
                Some(quitter)
            }
        });
        let tasks: Vec<_> = ms
            .into_iter()
            .map(|mut mesh| {
                tokio::spawn(async move {
                    let program = Program::from_name("secret-santa", &Value::Null).unwrap();
                    let rng = ChaCha20Rng::seed_from_u64(mesh.party_index() as u64);
                    let res =
                        run_program(&program, &[], &mut mesh, rng, &RuntimeConfig::default()).await;
                    // Kept open until every survivor has its answer: a survivor that closed
                    // on its own error would look like a second vanished peer to the others.
                    (res, started.elapsed(), mesh)
                })
            })
            .collect();
        let mut survivors = Vec::new();
        for t in tasks {
            let (res, elapsed, mesh) = t.await.unwrap();
            survivors.push(mesh);
            let err = res.expect_err("the computation cannot finish without party 2");
            let party = match &err {
                ProgramError::Mpc(e) => e.party(),
                _ => None,
            };
            assert_eq!(party, Some(2), "{err:?}");
            let bound = if crash {
                Duration::from_secs(1)
            } else {
                recv_timeout + Duration::from_secs(2)
            };
            assert!(elapsed < bound, "noticed after {elapsed:?}");
            eprintln!(
                "{}: {:?} after {elapsed:?}",
                if crash { "crashed" } else { "silent" },
                err
            );
        }
        drop(quitter_task.await.unwrap());
    }
}

/// SHA-256 (lowercase hex) of a roster document, standing in for the hash of the signed roster.
fn hash_of(doc: &Value) -> String {
    Sha256::digest(doc.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Connects every party concurrently, party `i` with `rosters[i]` (a broker that shows
/// different rosters to different parties).
async fn connect_parties_seeing(
    rosters: &[MeshRoster],
    seeds: &[u8],
    config: &MeshConfig,
) -> Vec<(Result<Mesh, MeshError>, Signaling)> {
    let (signalings, _) = relay(seeds.len(), None);
    let tasks: Vec<_> = signalings
        .into_iter()
        .zip(seeds.iter().copied())
        .zip(rosters.iter().cloned())
        .map(|((mut sig, seed), roster)| {
            let config = config.clone();
            tokio::spawn(async move {
                let res = connect(&keypair(seed), &roster, &config, &mut sig).await;
                (res, sig)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// (g) A broker that shows two different rosters: the same session and parties, but one
/// party's roster differs in one member's evidence, so its roster hash differs. Whichever
/// party is shown the other roster (the offerer of every pair, the middle one, or the
/// answerer of every pair), nobody gets a mesh — so no MPC message is ever sent — and every
/// party given the real roster aborts naming that party: it either refuses that party's
/// binding as one for another roster itself, or is told so by that party's `bye`.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_shows_two_different_rosters_is_caught_before_any_mpc_message() {
    let session = "meshTwoRosters001";
    let members = |evidence_of_2: &str| {
        json!({
            "session": session,
            "members": SEEDS.iter().enumerate().map(|(i, &s)| json!({
                "index": i,
                "did": keypair(s).did(),
                "evidence": if i == 2 { evidence_of_2.to_owned() } else { format!("vp-{i}") },
            })).collect::<Vec<_>>(),
        })
    };
    let real = MeshRoster {
        roster_hash: hash_of(&members("vp-2")),
        ..roster(session, &SEEDS)
    };
    let shown_elsewhere = MeshRoster {
        roster_hash: hash_of(&members("vp-2-from-another-join")),
        ..real.clone()
    };
    assert_ne!(real.roster_hash, shown_elsewhere.roster_hash);
    assert_eq!(real.parties, shown_elsewhere.parties);

    for odd in 0..SEEDS.len() {
        let rosters: Vec<MeshRoster> = (0..SEEDS.len())
            .map(|i| {
                if i == odd {
                    shown_elsewhere.clone()
                } else {
                    real.clone()
                }
            })
            .collect();
        let started = Instant::now();
        let results = connect_parties_seeing(&rosters, &SEEDS, &config()).await;
        let elapsed = started.elapsed();
        // Detected by a party itself: a validly signed binding for another roster hash.
        let detected = |err: &MeshError, by: usize| match err {
            MeshError::BindingForAnotherSession {
                field: "rosterHash",
                expected,
                found,
                ..
            } => {
                assert_eq!(expected, &rosters[by].roster_hash, "{err}");
                assert_ne!(found, expected, "{err}");
                true
            }
            _ => false,
        };
        let mut self_detections = 0;
        for i in 0..SEEDS.len() {
            let err = failure(&results, i);
            eprintln!("roster shown to #{odd} differs; party {i}: {err}");
            let named = err.peer().expect("the error names a peer");
            if detected(err, i) {
                // Party `i` checked the binding itself: the odd party refuses its honest
                // peers' bindings, an honest party the odd one's.
                if i == odd {
                    assert_ne!(named.index, odd, "{err}");
                } else {
                    assert_eq!(named, &peer(&real, odd), "{err}");
                }
                self_detections += 1;
                continue;
            }
            // Otherwise a peer that refused a binding told it so in its `bye`. For an honest
            // party that peer is the odd one, or (if that `bye` was overtaken) an honest peer
            // that stopped because of the odd one, whose `bye` then names it.
            let MeshError::PeerClosed {
                reason: Some(r), ..
            } = err
            else {
                panic!("party {i}: unexpected error: {err}")
            };
            assert!(
                r.contains("binding_for_another_session") && r.contains("rosterHash"),
                "{err}"
            );
            if i == odd {
                assert_ne!(named.index, odd, "{err}");
            } else if named.index != odd {
                assert!(r.contains(&format!("#{odd} (")), "{err}");
            }
        }
        assert!(
            self_detections >= 1,
            "nobody checked the roster hash itself"
        );
        // Caught in the signaling exchange: well within one phase timeout.
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    }
}
