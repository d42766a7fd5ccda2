//! The `mpc-node` command line: a party's identity and credentials.
//!
//! Every command prints JSON on stdout. Exit status: 0 when the command
//! succeeded (or the checked document is valid), 1 when a document was
//! checked and is invalid (the reason is on stderr and in the JSON), 2 for a
//! usage or input error (unreadable file, malformed JSON, bad key file).
//!
//! The CLI is a thin shell: it parses arguments, reads files, and calls the
//! `identity` crate, which does all checking.
#![forbid(unsafe_code)]

pub mod checks;
pub mod cli;
pub mod client;
pub mod join;
pub mod mesh;
pub mod signaling;
