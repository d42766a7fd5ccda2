//! Canonical forms that Data Integrity proofs hash: RDF Dataset
//! Canonicalization (RDFC-1.0, via `ssi`'s JSON-LD expansion with bundled
//! contexts, fully offline) and the JSON Canonicalization Scheme (RFC 8785).

use ssi::json_ld::{CompactJsonLd, ContextLoader, Expandable};
use ssi::rdf::{AnyLdEnvironment, LdEnvironment};

/// Why a document has no canonical form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonError {
    /// JSON-LD expansion failed: an unknown (not bundled) context, a term
    /// that the context does not define, or invalid JSON-LD.
    #[error("JSON-LD expansion failed: {0}")]
    Expansion(String),
    /// The expanded document could not be turned into RDF.
    #[error("RDF conversion failed: {0}")]
    Rdf(String),
    /// JCS serialization failed (e.g. a number JSON cannot represent).
    #[error("JSON canonicalization failed")]
    Jcs(#[source] serde_json::Error),
}

/// RDFC-1.0 canonical N-Quads of a JSON-LD document, one string per line
/// (each ending in `\n`), in canonical order.
pub(crate) fn rdfc(doc: &serde_json::Value) -> Result<Vec<String>, CanonError> {
    if let Some(bad) = non_utf8_percent_encoding(doc) {
        return Err(CanonError::Expansion(format!(
            "{:?} percent-encodes bytes that are not UTF-8",
            bad.chars().take(64).collect::<String>()
        )));
    }
    let ld = CompactJsonLd(json_syntax::Value::from_serde_json(doc.clone()));
    let loader = ContextLoader::default();
    // The loader only reads bundled contexts, so the future never waits on IO
    // and a local executor drives it to completion synchronously.
    futures_executor::block_on(async {
        let mut env = LdEnvironment::default();
        let expanded = ld
            .expand_with(&mut env, &loader)
            .await
            .map_err(|e| CanonError::Expansion(e.to_string()))?;
        env.canonical_form_of(&expanded)
            .map_err(|e| CanonError::Rdf(e.to_string()))
    })
}

/// The IRI library under the JSON-LD processor (`iref`/`pct-str`) panics
/// when it normalizes an IRI whose percent-encoded bytes are not UTF-8
/// (`urn:x:%dea`). Keys and types become IRIs through `@vocab`, and ids,
/// contexts and many values are IRIs, so any string of that kind is refused
/// before expansion (found by the `presentation_verify` fuzz target).
fn non_utf8_percent_encoding(v: &serde_json::Value) -> Option<&str> {
    use serde_json::Value;
    match v {
        Value::String(s) => percent_decoding_is_not_utf8(s).then_some(s.as_str()),
        Value::Array(a) => a.iter().find_map(non_utf8_percent_encoding),
        Value::Object(o) => o.iter().find_map(|(k, v)| {
            if percent_decoding_is_not_utf8(k) {
                Some(k.as_str())
            } else {
                non_utf8_percent_encoding(v)
            }
        }),
        _ => None,
    }
}

fn percent_decoding_is_not_utf8(s: &str) -> bool {
    if !s.contains('%') {
        return false;
    }
    let hex = |c: u8| char::from(c).to_digit(16);
    let b = s.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 0xff.
                decoded.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
                i += 3;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_err()
}

/// RFC 8785 canonical JSON bytes.
pub(crate) fn jcs(doc: &serde_json::Value) -> Result<Vec<u8>, CanonError> {
    check_integers(doc)?;
    serde_json_canonicalizer::to_vec(doc).map_err(CanonError::Jcs)
}

/// Largest integer magnitude I-JSON (RFC 7493 §2.2) allows: 2^53 − 1.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// RFC 8785 writes every number as an IEEE 754 double, so integers beyond
/// 2^53 that round to the same double share one canonical form: a signature
/// over it would not bind the integer the verifier reads back (9007199254740993
/// could be swapped for 9007199254740992). Such integers are refused, as
/// I-JSON requires; they belong in strings.
fn check_integers(v: &serde_json::Value) -> Result<(), CanonError> {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let safe = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_SAFE_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                (None, None) => true, // a double: JCS represents it exactly
            };
            if safe {
                Ok(())
            } else {
                Err(CanonError::Jcs(serde::ser::Error::custom(format!(
                    "the integer {n} is outside the I-JSON range ±(2^53 − 1); put it in a string"
                ))))
            }
        }
        Value::Array(a) => a.iter().try_for_each(check_integers),
        Value::Object(o) => o.values().try_for_each(check_integers),
        _ => Ok(()),
    }
}
