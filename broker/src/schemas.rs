//! The JSON Schemas of `schemas/`, embedded at build time, served at
//! `/v1/schemas/{name}` and used to validate what clients send.

use jsonschema::{Registry, Validator};
use serde_json::Value;

use crate::problem::Problem;

/// Every schema file, by name.
pub const FILES: &[(&str, &str)] = &[
    (
        "manifest.schema.json",
        include_str!("../../schemas/manifest.schema.json"),
    ),
    (
        "publication.schema.json",
        include_str!("../../schemas/publication.schema.json"),
    ),
    (
        "roster.schema.json",
        include_str!("../../schemas/roster.schema.json"),
    ),
    (
        "signal-client.schema.json",
        include_str!("../../schemas/signal-client.schema.json"),
    ),
    (
        "signal-server.schema.json",
        include_str!("../../schemas/signal-server.schema.json"),
    ),
    (
        "channel-binding.schema.json",
        include_str!("../../schemas/channel-binding.schema.json"),
    ),
    (
        "problem.schema.json",
        include_str!("../../schemas/problem.schema.json"),
    ),
    (
        "credential-subject.schema.json",
        include_str!("../../schemas/credential-subject.schema.json"),
    ),
    (
        "publish-request.schema.json",
        include_str!("../../schemas/publish-request.schema.json"),
    ),
    (
        "challenge-request.schema.json",
        include_str!("../../schemas/challenge-request.schema.json"),
    ),
];

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("../../schemas/openapi.json");

/// Base of every schema's `$id`.
pub const BASE: &str = "https://mpc-broker.invalid/schemas/";

/// A schema file by name.
pub fn file(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A schema file could not be compiled (a build defect, caught by tests).
#[derive(Debug, thiserror::Error)]
#[error("schema {name} does not compile: {reason}")]
pub struct SchemaError {
    name: String,
    reason: String,
}

/// Compiled validators for what clients send.
#[derive(Debug)]
pub struct Schemas {
    publish: Validator,
    signal: Validator,
    challenge: Validator,
}

/// Compiles one schema file with all others resolvable by `$id`.
pub fn compile(name: &str) -> Result<Validator, SchemaError> {
    let err = |reason: String| SchemaError {
        name: name.to_owned(),
        reason,
    };
    let mut registry = Registry::new();
    for (n, text) in FILES {
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("{n}: {e}")))?;
        registry = registry
            .add(format!("{BASE}{n}"), v)
            .map_err(|e| err(e.to_string()))?;
    }
    let registry = registry.prepare().map_err(|e| err(e.to_string()))?;
    let root: Value = serde_json::from_str(file(name).ok_or_else(|| err("unknown schema".into()))?)
        .map_err(|e| err(e.to_string()))?;
    jsonschema::options()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| err(e.to_string()))
}

impl Schemas {
    /// Compiles the validators.
    pub fn load() -> Result<Self, SchemaError> {
        Ok(Schemas {
            publish: compile("publish-request.schema.json")?,
            signal: compile("signal-client.schema.json")?,
            challenge: compile("challenge-request.schema.json")?,
        })
    }

    /// Validates a publish request body.
    pub fn check_publish(&self, v: &Value) -> Result<(), Problem> {
        check(&self.publish, v, "manifest_invalid", "the publish request")
    }

    /// Validates a client signaling message.
    pub fn check_signal(&self, v: &Value) -> Result<(), Problem> {
        check(&self.signal, v, "message_invalid", "the signaling message")
    }

    /// Validates a challenge request body.
    pub fn check_challenge(&self, v: &Value) -> Result<(), Problem> {
        check(
            &self.challenge,
            v,
            "request_invalid",
            "the challenge request",
        )
    }
}

fn check(validator: &Validator, v: &Value, code: &'static str, what: &str) -> Result<(), Problem> {
    let errors: Vec<String> = validator
        .iter_errors(v)
        .take(3)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::bad_request(
            code,
            format!("{what} does not match its schema: {}", errors.join("; ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_and_the_openapi_document_parses() {
        for (name, _) in FILES {
            compile(name).unwrap();
        }
        let api: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(api["openapi"].as_str().map(|s| &s[..2]), Some("3."));
    }
}
