//! `mpc-node credential …`

use std::path::PathBuf;
use std::time::SystemTime;

use clap::{Subcommand, ValueEnum};
use identity::{
    format_timestamp, issue_credential, keyfile, present, verify_credential, verify_presentation,
    CredentialRequest, Cryptosuite, Did, PresentationRequest, VerifiedCredential,
};
use serde_json::{json, Map, Value};

use super::{error_chain, parse_time, read_input, read_json, CliError, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Suite {
    /// RDF canonicalization (JSON-LD): the most widely supported.
    #[value(name = "eddsa-rdfc-2022")]
    Rdfc,
    /// JSON canonicalization: no JSON-LD processing, faster.
    #[value(name = "eddsa-jcs-2022")]
    Jcs,
}

impl From<Suite> for Cryptosuite {
    fn from(s: Suite) -> Self {
        match s {
            Suite::Rdfc => Cryptosuite::EddsaRdfc2022,
            Suite::Jcs => Cryptosuite::EddsaJcs2022,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialCommand {
    /// Issue a VC 2.0 credential about a subject DID, signed by the issuer key.
    Issue {
        /// The issuer's key file.
        #[arg(long)]
        key: PathBuf,
        /// The subject's DID.
        #[arg(long)]
        subject: String,
        /// Credential type (repeatable), e.g. MpcParticipantCredential.
        #[arg(long = "type", required = true)]
        types: Vec<String>,
        /// Claims about the subject as a JSON object, e.g. '{"organization":"Uni A"}'.
        #[arg(long)]
        claims: Option<String>,
        /// Start of validity (default: now).
        #[arg(long)]
        valid_from: Option<String>,
        /// End of validity, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        valid_until: Option<String>,
        /// Proof suite.
        #[arg(long, value_enum, default_value_t = Suite::Rdfc)]
        suite: Suite,
        /// The proof's creation time (default: now); fixed values give reproducible output.
        #[arg(long)]
        created: Option<String>,
        /// Optional credential id (a URI).
        #[arg(long)]
        id: Option<String>,
    },
    /// Verify a credential (proof, issuer binding, validity period).
    Verify {
        /// The credential file ('-' for standard input).
        file: PathBuf,
        /// Verify as of this time instead of now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Wrap credentials in a presentation signed by the holder for a verifier's challenge.
    Present {
        /// The holder's key file.
        #[arg(long)]
        key: PathBuf,
        /// The verifier's challenge.
        #[arg(long)]
        challenge: String,
        /// The verifier's domain.
        #[arg(long)]
        domain: String,
        /// Proof suite.
        #[arg(long, value_enum, default_value_t = Suite::Rdfc)]
        suite: Suite,
        /// The proof's creation time (default: now).
        #[arg(long)]
        created: Option<String>,
        /// Credential files to include.
        #[arg(required = true)]
        credentials: Vec<PathBuf>,
    },
    /// Verify a presentation and every credential inside it.
    VerifyPresentation {
        /// The challenge the verifier issued.
        #[arg(long)]
        challenge: String,
        /// The verifier's domain.
        #[arg(long)]
        domain: String,
        /// The presentation file ('-' for standard input).
        file: PathBuf,
        /// Verify as of this time instead of now.
        #[arg(long)]
        now: Option<String>,
    },
}

fn time_or_now(t: Option<&str>) -> Result<SystemTime, CliError> {
    t.map(parse_time).unwrap_or_else(|| Ok(SystemTime::now()))
}

pub(crate) fn run(cmd: CredentialCommand) -> Result<Outcome, CliError> {
    match cmd {
        CredentialCommand::Issue {
            key,
            subject,
            types,
            claims,
            valid_from,
            valid_until,
            suite,
            created,
            id,
        } => {
            let issuer = keyfile::load(&key)?;
            let subject =
                Did::parse(&subject).map_err(|e| CliError::Input(format!("--subject: {e}")))?;
            let claims: Map<String, Value> = match claims {
                None => Map::new(),
                Some(text) => match serde_json::from_str(&text) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => return Err(CliError::Input("--claims must be a JSON object".into())),
                    Err(e) => return Err(CliError::Input(format!("--claims is not JSON: {e}"))),
                },
            };
            let now = SystemTime::now();
            let req = CredentialRequest {
                id,
                subject,
                types,
                claims,
                valid_from: valid_from
                    .as_deref()
                    .map(parse_time)
                    .transpose()?
                    .unwrap_or(now),
                valid_until: valid_until.as_deref().map(parse_time).transpose()?,
                suite: suite.into(),
                created: created
                    .as_deref()
                    .map(parse_time)
                    .transpose()?
                    .unwrap_or(now),
            };
            issue_credential(&issuer, &req)
                .map(Outcome::Done)
                .map_err(|e| CliError::Input(error_chain(&e)))
        }
        CredentialCommand::Verify { file, now } => {
            let vc = read_json(&file)?;
            let now = time_or_now(now.as_deref())?;
            match verify_credential(&vc, now) {
                Err(e) => Err(CliError::Input(format!(
                    "cannot check the credential: {}",
                    error_chain(&e)
                ))),
                Ok(Ok(v)) => Ok(Outcome::Done(credential_report(&v))),
                Ok(Err(reason)) => Ok(invalid(error_chain(&reason))),
            }
        }
        CredentialCommand::Present {
            key,
            challenge,
            domain,
            suite,
            created,
            credentials,
        } => {
            let holder = keyfile::load(&key)?;
            let vcs = credentials
                .iter()
                .map(|p| read_json(p))
                .collect::<Result<Vec<_>, _>>()?;
            let req = PresentationRequest {
                challenge,
                domain,
                suite: suite.into(),
                created: time_or_now(created.as_deref())?,
            };
            present(&holder, &vcs, &req)
                .map(Outcome::Done)
                .map_err(|e| CliError::Input(error_chain(&e)))
        }
        CredentialCommand::VerifyPresentation {
            challenge,
            domain,
            file,
            now,
        } => {
            let text = read_input(&file)?;
            let vp: Value = serde_json::from_str(&text).map_err(|e| {
                CliError::Input(format!("{} is not valid JSON: {e}", file.display()))
            })?;
            let now = time_or_now(now.as_deref())?;
            match verify_presentation(&vp, &challenge, &domain, now) {
                Err(e) => Err(CliError::Input(format!(
                    "cannot check the presentation: {}",
                    error_chain(&e)
                ))),
                Ok(Ok(v)) => Ok(Outcome::Done(json!({
                    "valid": true,
                    "holder": v.holder,
                    "credentials": v.credentials.iter().map(credential_report).collect::<Vec<_>>(),
                }))),
                Ok(Err(reason)) => Ok(invalid(error_chain(&reason))),
            }
        }
    }
}

fn invalid(reason: String) -> Outcome {
    Outcome::Invalid {
        report: json!({ "valid": false, "reason": reason }),
        reason,
    }
}

fn credential_report(v: &VerifiedCredential) -> Value {
    json!({
        "valid": true,
        "issuer": v.issuer,
        "subject": v.subject,
        "types": v.types,
        "suite": v.suite.name(),
        "validUntil": v.valid_until.map(format_timestamp),
        "claims": v.claims,
    })
}
