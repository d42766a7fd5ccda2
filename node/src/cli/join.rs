//! `mpc-node join`: take part in a session.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use identity::{keyfile, Did};
use serde_json::json;

use super::progress::{Reporter, Style};
use super::{read_json, CliError, Outcome};
use crate::join::{join, JoinRequest};
use crate::mesh::MeshConfig;

#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The broker's URL, e.g. https://broker.example.org; repeat it (or
    /// separate with commas) for several replicas of one broker, tried in
    /// turn when one fails.
    #[arg(long, required = true, value_delimiter = ',')]
    broker: Vec<String>,
    /// The session id the organizer gave you (ids may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    session: String,
    /// Your key file.
    #[arg(long)]
    key: PathBuf,
    /// Credential files to present (repeatable).
    #[arg(long = "credential")]
    credentials: Vec<PathBuf>,
    /// The organizer's DID: the manifest must be signed by it.
    #[arg(long)]
    organizer: Option<String>,
    /// Your private inputs (repeatable), e.g. --input 42.
    #[arg(long = "input", allow_hyphen_values = true)]
    inputs: Vec<i64>,
    /// Longest wait for the other parties to join, seconds (at most a day).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    wait: u64,
    /// Local UDP address for WebRTC (repeatable; default all interfaces).
    #[arg(long = "udp")]
    udp: Vec<String>,
    /// Machine-readable progress (JSON lines on stderr).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: JoinArgs) -> Result<Outcome, CliError> {
    let key = keyfile::load(&a.key)?;
    let credentials = a
        .credentials
        .iter()
        .map(|p| read_json(p))
        .collect::<Result<Vec<_>, _>>()?;
    let organizer = a
        .organizer
        .as_deref()
        .map(|o| Did::parse(o).map_err(|e| CliError::Input(format!("--organizer: {e}"))))
        .transpose()?;
    let mut mesh = MeshConfig::default();
    if !a.udp.is_empty() {
        mesh.udp_addrs = a.udp.clone();
    }
    let req = JoinRequest {
        brokers: a.broker,
        session: a.session,
        key,
        credentials,
        organizer,
        inputs: a.inputs,
        roster_wait: Duration::from_secs(a.wait),
        mesh,
    };
    let mut progress = Reporter {
        style: Style::detect(a.json),
        label: "you".into(),
    };
    let runtime = super::party_runtime()?;
    match runtime.block_on(join(req, &mut progress)) {
        Ok(report) => Ok(Outcome::Done(
            serde_json::to_value(&report).unwrap_or_default(),
        )),
        Err(e) => Ok(Outcome::Invalid {
            report: json!({"phase": e.phase, "peer": e.peer.as_ref().map(|p| json!({"index": p.index, "did": p.did})), "error": e.reason}),
            reason: e.to_string(),
        }),
    }
}
