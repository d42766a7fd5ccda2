//! Identity for the MPC session broker: Ed25519 keys, `did:key`, key files,
//! W3C Verifiable Credentials 2.0 and Presentations with Data Integrity
//! proofs (`eddsa-rdfc-2022`, `eddsa-jcs-2022`), compact EdDSA JWS, and signed
//! JSON statements (manifests, rosters).
//!
//! Everything here is synchronous and pure CPU work: no network, no clock.
//! Verification takes the current time as an argument so that callers (and
//! tests) decide what "now" is; async services run it on a blocking pool.
//!
//! Verification results keep "could not check" apart from "checked and
//! invalid": functions return `Result<Result<Verified, Invalid>, Error>`.
//! The outer error means the input could not be evaluated (malformed JSON,
//! unsupported suite, a context that is not bundled); the inner one names the
//! exact rule the input broke.
#![forbid(unsafe_code)]

mod canon;
pub mod credential;
pub mod did;
pub mod integrity;
pub mod jws;
pub mod keyfile;
mod keys;
pub mod session;
pub mod statement;
mod time;

pub use canon::CanonError;
pub use credential::{
    issue_credential, present, verify_credential, verify_presentation, CredentialInvalid,
    CredentialRequest, PresentationInvalid, PresentationRequest, VerifiedCredential,
    VerifiedPresentation, VerifyError,
};
pub use did::{Did, DidError, DocumentFormat};
pub use integrity::{Cryptosuite, ProofPurpose};
pub use keyfile::KeyFileError;
pub use keys::{BadSignature, KeyError, Keypair, PublicKey, Signature};
pub use time::{format_timestamp, parse_timestamp, TimeError};
