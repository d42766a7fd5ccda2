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

/// RFC 8785 canonical JSON bytes.
pub(crate) fn jcs(doc: &serde_json::Value) -> Result<Vec<u8>, CanonError> {
    serde_json_canonicalizer::to_vec(doc).map_err(CanonError::Jcs)
}
