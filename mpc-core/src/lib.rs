//! Shamir-based MPC engine (placeholder until its issue lands).
#![forbid(unsafe_code)]
