//! `mpc-node session …`: the organizer's commands.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Subcommand;
use identity::session::{Manifest, MANIFEST_TYPE};
use identity::{keyfile, Did};
use serde_json::{json, Value};

use super::{read_json, CliError, Outcome};
use crate::checks::check_publication;
use crate::client::{BrokerClient, ClientError};

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// Sign a manifest with the organizer key and publish it; prints the session id.
    Publish {
        /// The manifest (JSON; unsigned, or already signed by this organizer).
        manifest: PathBuf,
        /// The organizer's key file.
        #[arg(long)]
        key: PathBuf,
        /// The broker's URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        broker: String,
        /// An organizer credential, if the broker authorises organizers by credential.
        #[arg(long)]
        organizer_credential: Option<PathBuf>,
    },
    /// Show a session's state and its checked manifest.
    Show {
        /// The session id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// The broker's URL.
        #[arg(long)]
        broker: String,
        /// Require the manifest to be signed by this organizer DID.
        #[arg(long)]
        organizer: Option<String>,
    },
    /// Freeze the roster with the parties that joined so far (organizer only).
    Seal {
        /// The session id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// The organizer's key file.
        #[arg(long)]
        key: PathBuf,
        /// The broker's URL.
        #[arg(long)]
        broker: String,
    },
}

/// Connects to the broker and, with a key, authenticates; a failure is the
/// command's outcome, naming the phase.
async fn connect(
    broker: &str,
    key: Option<&identity::Keypair>,
) -> Result<(BrokerClient, Option<String>), Outcome> {
    let client = BrokerClient::connect(broker)
        .await
        .map_err(|e| refused("connect", &e))?;
    let token = match key {
        Some(k) => Some(
            client
                .authenticate(k)
                .await
                .map_err(|e| refused("authenticate", &e))?,
        ),
        None => None,
    };
    Ok((client, token))
}

fn refused(phase: &str, e: &ClientError) -> Outcome {
    Outcome::Invalid {
        report: json!({"phase": phase, "code": e.code(), "error": super::error_chain(e)}),
        reason: format!("{phase}: {}", super::error_chain(e)),
    }
}

pub(crate) fn run(cmd: SessionCommand) -> Result<Outcome, CliError> {
    super::runtime()?.block_on(async {
        match cmd {
            SessionCommand::Publish { manifest, key, broker, organizer_credential } => {
                let key = keyfile::load(&key)?;
                let doc = read_json(&manifest)?;
                let signed = sign_manifest(&doc, &key)?;
                let cred = organizer_credential.map(|p| read_json(&p)).transpose()?;
                let (client, token) = match connect(&broker, Some(&key)).await {
                    Ok(c) => c,
                    Err(outcome) => return Ok(outcome),
                };
                match client.publish(token.as_deref().unwrap_or_default(), &signed, cred.as_ref()).await {
                    Ok(p) => Ok(Outcome::Done(json!({
                        "session": p["session"],
                        "broker": p["broker"],
                        "manifestHash": p["manifestHash"],
                    }))),
                    Err(e) => Ok(refused("publish", &e)),
                }
            }
            SessionCommand::Show { id, broker, organizer } => {
                let organizer = organizer
                    .map(|o| Did::parse(&o).map_err(|e| CliError::Input(format!("--organizer: {e}"))))
                    .transpose()?;
                let (client, _) = match connect(&broker, None).await {
                    Ok(c) => c,
                    Err(outcome) => return Ok(outcome),
                };
                let s = match client.session(&id).await {
                    Ok(s) => s,
                    Err(e) => return Ok(refused("fetch session", &e)),
                };
                match check_publication(&s["publication"], &id, organizer.as_ref(), SystemTime::now()) {
                    Ok(c) => Ok(Outcome::Done(json!({
                        "session": id,
                        "state": s["state"],
                        "joined": s["joined"],
                        "broker": c.broker,
                        "manifestHash": c.manifest_hash,
                        "manifest": c.manifest,
                    }))),
                    Err(e) => Ok(Outcome::Invalid {
                        report: json!({"phase": "check manifest", "error": e.to_string()}),
                        reason: format!("check manifest: {e}"),
                    }),
                }
            }
            SessionCommand::Seal { id, key, broker } => {
                let key = keyfile::load(&key)?;
                let (client, token) = match connect(&broker, Some(&key)).await {
                    Ok(c) => c,
                    Err(outcome) => return Ok(outcome),
                };
                match client.seal(&id, token.as_deref().unwrap_or_default()).await {
                    Ok(r) => Ok(Outcome::Done(json!({
                        "session": id,
                        "members": r["members"].as_array().map(|m| m.iter().map(|x| json!({"index": x["index"], "did": x["did"]})).collect::<Vec<_>>()),
                        "reason": r["reason"],
                    }))),
                    Err(e) => Ok(refused("seal", &e)),
                }
            }
        }
    })
}

/// Signs an unsigned manifest body (checking it first), or checks that an
/// already signed one is signed by `key`.
pub(crate) fn sign_manifest(doc: &Value, key: &identity::Keypair) -> Result<Value, CliError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| CliError::Input("the manifest must be a JSON object".into()))?;
    if obj.contains_key("proof") {
        return match identity::statement::verify(doc, MANIFEST_TYPE, Some(&key.did())) {
            Ok(Ok(_)) => Ok(doc.clone()),
            Ok(Err(e)) => Err(CliError::Input(format!(
                "the manifest's existing proof is not valid for this key: {e}"
            ))),
            Err(e) => Err(CliError::Input(format!(
                "the manifest's existing proof cannot be checked: {e}"
            ))),
        };
    }
    let m = Manifest::from_body(obj).map_err(|e| CliError::Input(e.to_string()))?;
    if m.organizer != key.did() {
        return Err(CliError::Input(format!(
            "the manifest names organizer {} but the key is {}; fix \"organizer\" or use the organizer's key",
            m.organizer,
            key.did()
        )));
    }
    identity::statement::sign(key, MANIFEST_TYPE, obj, SystemTime::now())
        .map_err(|e| CliError::Input(format!("cannot sign the manifest: {e}")))
}
