//! `mpc-broker`: DID authentication, session manifests, admission, signed
//! rosters and the WebSocket signaling relay (see `shared/design.md`, flows
//! 3–7). Not built yet: this crate is a placeholder in the workspace so the
//! layout is fixed; the service arrives with its own issue.
#![forbid(unsafe_code)]
