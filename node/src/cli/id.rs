//! `mpc-node id …`

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use identity::{keyfile, Did, DocumentFormat, Keypair};
use serde_json::json;

use super::{CliError, Outcome};

#[derive(Debug, Subcommand)]
pub(crate) enum IdCommand {
    /// Create a new Ed25519 key file (mode 0600) and print its DID.
    New {
        /// Derive the key from this 32-byte seed (64 hex digits) instead of
        /// the system's random generator. For tests and reproducible demos only.
        #[arg(long)]
        seed: Option<String>,
        /// Where to write the key file (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the DID and public key of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
    /// Print the DID document of a did:key.
    Resolve {
        /// The DID (did:key:z6Mk…).
        did: String,
        /// Document representation.
        #[arg(long, value_enum, default_value_t = Format::Multikey)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// Multikey verification method (current did:key spec).
    Multikey,
    /// Ed25519VerificationKey2018 + X25519KeyAgreementKey2019.
    Ed25519_2018,
    /// JsonWebKey2020 (publicKeyJwk).
    Jwk2020,
}

pub(crate) fn run(cmd: IdCommand) -> Result<Outcome, CliError> {
    match cmd {
        IdCommand::New { seed, out } => {
            let kp = match seed {
                Some(hex) => Keypair::from_seed_hex(&hex)
                    .map_err(|e| CliError::Input(format!("--seed: {e}")))?,
                None => Keypair::generate(&mut rand::rngs::OsRng),
            };
            keyfile::write(&out, &kp)?;
            Ok(Outcome::Done(json!({
                "did": kp.did(),
                "keyFile": out,
            })))
        }
        IdCommand::Show { file } => {
            let kp = keyfile::load(&file)?;
            let did = kp.did();
            Ok(Outcome::Done(json!({
                "did": did,
                "verificationMethod": did.verification_method(),
                "publicKeyMultibase": did.multibase(),
            })))
        }
        IdCommand::Resolve { did, format } => {
            let did = Did::parse(&did).map_err(|e| CliError::Input(e.to_string()))?;
            let format = match format {
                Format::Multikey => DocumentFormat::Multikey,
                Format::Ed25519_2018 => DocumentFormat::Ed25519VerificationKey2018,
                Format::Jwk2020 => DocumentFormat::JsonWebKey2020,
            };
            Ok(Outcome::Done(did.resolve(format)))
        }
    }
}
