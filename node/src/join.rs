//! `mpc-node join`: one party's whole session, phase by phase.
//!
//! connect → authenticate → manifest (checked: organizer and broker
//! signatures, expiry, a program this node knows) → join (a presentation
//! for this session) → roster (long-poll) → verify (the roster signature and
//! every peer's evidence against the organizer's policy, by this node) →
//! mesh (DID-bound WebRTC channels, every peer verified) → compute → close.
//!
//! Every phase has a timeout; a failure names the phase, and the peer when
//! there is one. Progress is reported through [`Progress`] so the CLI can
//! draw a live display, log lines, or JSON.

use std::time::{Duration, Instant, SystemTime};

use identity::{Did, Keypair};
use mpc_core::{Program, RuntimeConfig};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::checks::{check_publication, check_roster};
use crate::client::BrokerClient;
use crate::mesh::{self, IceServer, MeshConfig, MeshRoster, PeerRef, SignalKind, SignalMessage};
use crate::signaling::{self, Incoming, Signal};

/// The phases of a join, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinPhase {
    /// Reach the broker.
    Connect,
    /// Prove our DID, get a token.
    Authenticate,
    /// Fetch and check the manifest.
    Manifest,
    /// Present our credentials.
    Join,
    /// Wait for the frozen roster.
    Roster,
    /// Check the roster and every peer's evidence.
    Verify,
    /// Build and verify the WebRTC mesh.
    Mesh,
    /// Run the program.
    Compute,
}

impl std::fmt::Display for JoinPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            JoinPhase::Connect => "connect",
            JoinPhase::Authenticate => "authenticate",
            JoinPhase::Manifest => "manifest",
            JoinPhase::Join => "join",
            JoinPhase::Roster => "roster",
            JoinPhase::Verify => "verify",
            JoinPhase::Mesh => "mesh",
            JoinPhase::Compute => "compute",
        };
        f.write_str(s)
    }
}

/// A failed join: the phase, the peer if one is to blame, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{phase}: {}{reason}", peer.as_ref().map(|p| format!("peer #{} ({}): ", p.index, p.did)).unwrap_or_default())]
pub struct JoinError {
    /// Where it failed.
    pub phase: JoinPhase,
    /// The peer at fault, if any.
    pub peer: Option<PeerRef>,
    /// What went wrong.
    pub reason: String,
}

impl JoinError {
    fn new(phase: JoinPhase, reason: impl std::fmt::Display) -> Self {
        JoinError {
            phase,
            peer: None,
            reason: reason.to_string(),
        }
    }
}

/// Receives progress.
pub trait Progress: Send {
    /// A phase started.
    fn started(&mut self, phase: JoinPhase);
    /// A phase finished after `took`, with a one-line note.
    fn finished(&mut self, phase: JoinPhase, took: Duration, note: &str);
}

/// Ignores progress.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: JoinPhase) {}
    fn finished(&mut self, _: JoinPhase, _: Duration, _: &str) {}
}

/// What a join needs.
#[derive(Debug)]
pub struct JoinRequest {
    /// Broker URLs: one, or several replicas of one broker (tried in turn
    /// when one fails).
    pub brokers: Vec<String>,
    /// Session id.
    pub session: String,
    /// This party's key.
    pub key: Keypair,
    /// Credentials to present.
    pub credentials: Vec<Value>,
    /// The organizer this party expects (strongly recommended).
    pub organizer: Option<Did>,
    /// This party's private inputs.
    pub inputs: Vec<i64>,
    /// Longest wait for the roster.
    pub roster_wait: Duration,
    /// Mesh settings.
    pub mesh: MeshConfig,
}

/// What a finished join reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReport {
    /// Session id.
    pub session: String,
    /// Our index on the roster.
    pub index: usize,
    /// Roster DIDs in index order.
    pub parties: Vec<Did>,
    /// The program's output for us.
    pub output: mpc_core::ProgramOutput,
    /// Phase durations in milliseconds.
    pub timings: Vec<(JoinPhase, u128)>,
}

struct Phases<'a> {
    progress: &'a mut dyn Progress,
    timings: Vec<(JoinPhase, u128)>,
}

impl Phases<'_> {
    async fn run<T, F>(&mut self, phase: JoinPhase, limit: Duration, f: F) -> Result<T, JoinError>
    where
        F: std::future::Future<Output = Result<(T, String), JoinError>>,
    {
        self.progress.started(phase);
        let t0 = Instant::now();
        let (out, note) = tokio::time::timeout(limit, f)
            .await
            .map_err(|_| JoinError::new(phase, format!("did not finish within {limit:?}")))??;
        let took = t0.elapsed();
        self.timings.push((phase, took.as_millis()));
        self.progress.finished(phase, took, &note);
        Ok(out)
    }
}

const STEP: Duration = Duration::from_secs(30);

/// Runs one party's session.
pub async fn join(req: JoinRequest, progress: &mut dyn Progress) -> Result<JoinReport, JoinError> {
    use JoinPhase as P;
    let mut ph = Phases {
        progress,
        timings: Vec::new(),
    };
    let me = req.key.did();
    let client = ph
        .run(P::Connect, STEP, async {
            let c = BrokerClient::connect_any(&req.brokers)
                .await
                .map_err(|e| JoinError::new(P::Connect, crate::cli::error_chain(&e)))?;
            let note = format!("broker {}", c.info().did);
            Ok((c, note))
        })
        .await?;
    let token = ph
        .run(P::Authenticate, STEP, async {
            let t = client
                .authenticate(&req.key)
                .await
                .map_err(|e| JoinError::new(P::Authenticate, crate::cli::error_chain(&e)))?;
            Ok((t, format!("as {me}")))
        })
        .await?;
    let (session, program) = ph
        .run(P::Manifest, STEP, async {
            let s = client
                .session(&req.session)
                .await
                .map_err(|e| JoinError::new(P::Manifest, crate::cli::error_chain(&e)))?;
            let checked = check_publication(
                &s["publication"],
                &req.session,
                req.organizer.as_ref(),
                SystemTime::now(),
            )
            .map_err(|e| JoinError::new(P::Manifest, e))?;
            if checked.broker != client.info().did {
                return Err(JoinError::new(
                    P::Manifest,
                    format!(
                        "the publication is signed by {}, but the broker says it is {}",
                        checked.broker,
                        client.info().did
                    ),
                ));
            }
            let c = &checked.manifest.computation;
            let program = Program::from_name(&c.program, &c.params)
                .map_err(|e| JoinError::new(P::Manifest, e))?;
            let note = format!(
                "\"{}\" by {}, program {}",
                checked.manifest.title, checked.manifest.organizer, c.program
            );
            Ok(((checked, program), note))
        })
        .await?;
    drop(token);
    ph.run(P::Join, STEP, async {
        let v = client
            .join(&req.session, &req.key, &req.credentials)
            .await
            .map_err(|e| JoinError::new(P::Join, crate::cli::error_chain(&e)))?;
        Ok(((), format!("{} joined so far", v["joined"])))
    })
    .await?;
    let roster = ph
        .run(P::Roster, req.roster_wait.saturating_add(STEP), async {
            let r = client
                .roster(&req.session, req.roster_wait)
                .await
                .map_err(|e| JoinError::new(P::Roster, crate::cli::error_chain(&e)))?;
            Ok((r, "frozen".to_owned()))
        })
        .await?;
    let checked = ph
        .run(P::Verify, STEP, async {
            let r = check_roster(&roster, &session, &me, SystemTime::now())
                .map_err(|e| JoinError::new(P::Verify, e))?;
            let note = format!(
                "{} parties, every presentation re-verified; we are #{}",
                r.members.len(),
                r.me
            );
            Ok((r, note))
        })
        .await?;
    let parties: Vec<Did> = checked.members.iter().map(|m| m.did.clone()).collect();
    let mesh_roster = MeshRoster {
        session: req.session.clone(),
        roster_hash: checked.hash.clone(),
        parties: parties.clone(),
    };
    let mut mesh = ph
        .run(P::Mesh, STEP * 2, async {
            // The roster wait may have outlived the first token.
            let token = client
                .authenticate(&req.key)
                .await
                .map_err(|e| JoinError::new(P::Mesh, crate::cli::error_chain(&e)))?;
            let ice = client
                .ice_servers(&req.session, &token)
                .await
                .map_err(|e| JoinError::new(P::Mesh, crate::cli::error_chain(&e)))?;
            let mut config = req.mesh.clone();
            config.ice_servers.extend(parse_ice(&ice));
            config.relay_only = session.manifest.ice == identity::session::IcePolicy::Relay;
            let sig = signaling::connect_with(signaling::Options {
                urls: client.signal_urls(&req.session),
                token,
                peers: parties.iter().filter(|d| **d != me).cloned().collect(),
                reconnect_within: crate::client::RETRY_WITHIN,
                silence_timeout: signaling::SILENCE_TIMEOUT,
            })
            .await
            .map_err(|e| JoinError::new(P::Mesh, e))?;
            let mut bridged = bridge(sig, mesh_roster.clone());
            let mesh = mesh::connect(&req.key, &mesh_roster, &config, &mut bridged)
                .await
                .map_err(|e| JoinError {
                    phase: P::Mesh,
                    peer: e.peer().cloned(),
                    reason: e.to_string(),
                })?;
            Ok((mesh, format!("{} channels verified", parties.len() - 1)))
        })
        .await?;
    let threshold = session.manifest.threshold;
    let compute = ph
        .run(P::Compute, Duration::from_secs(600), async {
            let config = RuntimeConfig {
                threshold: Some(threshold),
                ..Default::default()
            };
            let run =
                mpc_core::run_program(&program, &req.inputs, &mut mesh, rand::rngs::OsRng, &config)
                    .await
                    .map_err(|e| {
                        let peer = mpc_error_peer(&e).and_then(|i| {
                            parties.get(i).map(|d| PeerRef {
                                index: i,
                                did: d.clone(),
                            })
                        });
                        JoinError {
                            phase: P::Compute,
                            peer,
                            reason: crate::cli::error_chain(&e),
                        }
                    })?;
            let note = format!(
                "{} messages, {} bytes sent",
                run.stats.messages_sent, run.stats.bytes_sent
            );
            Ok((run.output, note))
        })
        .await;
    // If a peer was lost, say so in our bye: the others then blame it, not us.
    match &compute {
        Err(JoinError { peer: Some(p), .. }) => mesh.abort(p.index).await,
        _ => mesh.close().await,
    }
    let output = compute?;
    Ok(JoinReport {
        session: req.session,
        index: checked.me,
        parties,
        output,
        timings: ph.timings,
    })
}

fn mpc_error_peer(e: &mpc_core::ProgramError) -> Option<usize> {
    match e {
        mpc_core::ProgramError::Mpc(m) => m.party(),
        _ => None,
    }
}

fn parse_ice(v: &Value) -> Vec<IceServer> {
    v["iceServers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| serde_json::from_value(s.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Connects the broker socket (DIDs) to the mesh (roster indices).
fn bridge(sig: signaling::Signaling, roster: MeshRoster) -> mesh::Signaling {
    let (out_tx, mut out_rx) = mpsc::channel::<SignalMessage>(256);
    let (in_tx, in_rx) = mpsc::channel::<SignalMessage>(256);
    let signaling::Signaling { tx, mut rx } = sig;
    let r = roster.clone();
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let Some(peer) = r.parties.get(m.peer).cloned() else {
                continue;
            };
            if tx
                .send(Signal {
                    kind: m.kind.as_str().to_owned(),
                    peer,
                    payload: m.payload,
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(incoming) = rx.recv().await {
            match incoming {
                Incoming::Signal(s) => {
                    let (Some(peer), Some(kind)) =
                        (roster.index_of(&s.peer), SignalKind::parse(&s.kind))
                    else {
                        continue;
                    };
                    if in_tx
                        .send(SignalMessage {
                            peer,
                            kind,
                            payload: s.payload,
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Incoming::Refused { code, detail } => {
                    tracing::warn!(%code, %detail, "the broker refused a signaling message");
                }
            }
        }
    });
    mesh::Signaling {
        outbound: out_tx,
        inbound: in_rx,
    }
}
