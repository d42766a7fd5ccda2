#![allow(clippy::unwrap_used)]
//! Verification cost of everything a broker checks at login, each next to a
//! raw Ed25519 verification measured in the same run.
//!
//! `cargo bench -p identity` prints a Markdown table (the one recorded in
//! `docs/benchmarks.md`). Own timing loop rather than criterion, so that the
//! table is exactly what is recorded: for every operation, samples alternate
//! between a batch of the operation and a batch of raw verifies, so machine
//! load affects both alike; each figure is the median of the samples.
//!
//! `BENCH_SAMPLES` (default 41) and `BENCH_SAMPLE_MS` (default 8) trade time
//! for stability. Target: an `eddsa-jcs-2022` presentation carrying one
//! credential verifies in at most 3x the time of its two raw signature checks.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use identity::integrity::{self, Cryptosuite};
use identity::{
    issue_credential, jws, parse_timestamp, present, verify_credential, verify_presentation,
    CredentialRequest, Did, DocumentFormat, Keypair, PresentationRequest,
};
use serde_json::{json, Map, Value};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Timer {
    samples: usize,
    sample: Duration,
}

struct Row {
    name: String,
    median_us: f64,
    raw_us: f64,
}

impl Timer {
    /// Iterations of `f` that take about one sample's duration.
    fn batch(&self, f: &mut dyn FnMut()) -> u32 {
        let start = Instant::now();
        let mut n = 0u32;
        // Warm-up doubles as calibration.
        while start.elapsed() < self.sample * 4 || n < 3 {
            f();
            n += 1;
        }
        let per = start.elapsed() / n;
        u32::try_from(self.sample.as_nanos() / per.as_nanos().max(1))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    fn time(&self, n: u32, f: &mut dyn FnMut()) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    }

    /// Median µs of `op`, and of the raw verify `raw`, interleaved.
    fn measure(&self, name: &str, op: &mut dyn FnMut(), raw: &mut dyn FnMut()) -> Row {
        let n_op = self.batch(op);
        let n_raw = self.batch(raw);
        let mut ops = Vec::with_capacity(self.samples);
        let mut raws = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            ops.push(self.time(n_op, op));
            raws.push(self.time(n_raw, raw));
        }
        Row {
            name: name.to_owned(),
            median_us: median(&mut ops),
            raw_us: median(&mut raws),
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn now() -> SystemTime {
    parse_timestamp("2026-03-01T12:00:00Z").unwrap()
}

fn credential(issuer: &Keypair, holder: &Keypair, suite: Cryptosuite) -> Value {
    issue_credential(
        issuer,
        &CredentialRequest {
            id: Some("urn:uuid:7d3c1a52-0d5e-4b8e-9a63-4d0b8c1f2e10".into()),
            subject: holder.did(),
            types: vec!["MpcParticipantCredential".into()],
            claims: json!({ "organization": "Acme Labs", "role": "party" })
                .as_object()
                .cloned()
                .unwrap(),
            valid_from: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
            valid_until: Some(parse_timestamp("2027-01-01T00:00:00Z").unwrap()),
            suite,
            created: parse_timestamp("2026-01-01T00:00:00Z").unwrap(),
        },
    )
    .unwrap()
}

fn presentation(holder: &Keypair, vc: &Value, suite: Cryptosuite) -> Value {
    present(
        holder,
        std::slice::from_ref(vc),
        &PresentationRequest {
            challenge: "3q2-7Yb0kF8".into(),
            domain: "broker.example".into(),
            suite,
            created: now(),
        },
    )
    .unwrap()
}

fn main() {
    let timer = Timer {
        samples: usize::try_from(env_or("BENCH_SAMPLES", 41)).unwrap_or(41),
        sample: Duration::from_millis(env_or("BENCH_SAMPLE_MS", 8)),
    };
    let issuer = Keypair::from_seed(&[1u8; 32]);
    let holder = Keypair::from_seed(&[2u8; 32]);
    let broker = Keypair::from_seed(&[3u8; 32]);

    // The baseline: one strict Ed25519 verification of a 64-byte message
    // (what a Data Integrity proof signs), public key already decoded.
    let message = [0x5au8; 64];
    let signature = holder.sign(&message);
    let public = holder.public();
    let mut raw = || {
        public
            .verify(black_box(&message), black_box(&signature))
            .unwrap();
    };

    let did_text = holder.did().to_string();
    let token = jws::issue_token(
        &broker,
        &jws::TokenClaims {
            iss: broker.did().to_string(),
            sub: holder.did().to_string(),
            aud: "broker.example".into(),
            iat: 1_772_366_000,
            exp: 1_772_367_000,
            jti: "b7c1".into(),
        },
    );
    let broker_key = broker.public();

    let mut rows = Vec::new();
    rows.push(timer.measure(
        "raw Ed25519 verify (`PublicKey::verify`)",
        &mut raw.clone(),
        &mut raw,
    ));
    rows.push(timer.measure(
        "did:key parse (`Did::parse`)",
        &mut || {
            black_box(Did::parse(black_box(&did_text)).unwrap());
        },
        &mut raw,
    ));
    rows.push(timer.measure(
        "did:key resolve (parse + `resolve(Multikey)`)",
        &mut || {
            let did = Did::parse(black_box(&did_text)).unwrap();
            black_box(did.resolve(DocumentFormat::Multikey));
        },
        &mut raw,
    ));
    rows.push(timer.measure(
        "compact JWS verify (`jws::verify`)",
        &mut || {
            black_box(jws::verify(black_box(&token), &broker_key).unwrap());
        },
        &mut raw,
    ));
    rows.push(timer.measure(
        "broker token verify (`jws::verify_token`)",
        &mut || {
            black_box(
                jws::verify_token(
                    black_box(&token),
                    &broker_key,
                    "broker.example",
                    now(),
                    Duration::from_secs(30),
                )
                .unwrap(),
            );
        },
        &mut raw,
    ));

    let mut breakdown = Vec::new();
    for suite in [Cryptosuite::EddsaJcs2022, Cryptosuite::EddsaRdfc2022] {
        let vc = credential(&issuer, &holder, suite);
        let vp = presentation(&holder, &vc, suite);
        rows.push(timer.measure(
            &format!("VC verify, {suite} (`verify_credential`)"),
            &mut || {
                black_box(verify_credential(black_box(&vc), now()).unwrap().unwrap());
            },
            &mut raw,
        ));
        rows.push(timer.measure(
            &format!("VP + 1 VC verify, {suite} (`verify_presentation`)"),
            &mut || {
                black_box(
                    verify_presentation(black_box(&vp), "3q2-7Yb0kF8", "broker.example", now())
                        .unwrap()
                        .unwrap(),
                );
            },
            &mut raw,
        ));

        // Where the time of one proof check goes.
        let mut unsecured = vp.as_object().unwrap().clone();
        let config: Map<String, Value> = unsecured
            .remove("proof")
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        let unsecured = Value::Object(unsecured);
        breakdown.push(timer.measure(
            &format!("  VP proof only (`integrity::verify`), {suite}"),
            &mut || {
                black_box(integrity::verify(black_box(&vp)).unwrap().unwrap());
            },
            &mut raw,
        ));
        breakdown.push(timer.measure(
            &format!("  VP canonicalize + hash (`integrity::hash_data`), {suite}"),
            &mut || {
                black_box(
                    integrity::hash_data(black_box(&unsecured), config.clone(), suite).unwrap(),
                );
            },
            &mut raw,
        ));
        breakdown.push(timer.measure(
            &format!("  VP deep clone (`Value::clone`), {suite}"),
            &mut || {
                black_box(black_box(&vp).clone());
            },
            &mut raw,
        ));
    }

    let raw_us = rows[0].median_us;
    println!();
    println!("| operation | median µs | raw verify µs (same run) | ratio to one raw verify |");
    println!("|---|---:|---:|---:|");
    for r in rows.iter().chain(&breakdown) {
        println!(
            "| {} | {:.1} | {:.1} | {:.2}x |",
            r.name,
            r.median_us,
            r.raw_us,
            r.median_us / r.raw_us
        );
    }
    let jcs_vp = rows
        .iter()
        .find(|r| r.name.starts_with("VP + 1 VC verify, eddsa-jcs-2022"))
        .unwrap();
    let budget = 3.0 * 2.0 * jcs_vp.raw_us;
    println!();
    println!(
        "target: eddsa-jcs-2022 VP+1VC ≤ 3x two raw verifies: {:.1} µs vs budget {:.1} µs ({:.2}x of two raw verifies): {}",
        jcs_vp.median_us,
        budget,
        jcs_vp.median_us / (2.0 * jcs_vp.raw_us),
        if jcs_vp.median_us <= budget { "PASS" } else { "FAIL" }
    );
    println!(
        "({} samples of ~{} ms per operation; raw verify overall median {:.1} µs)",
        timer.samples,
        timer.sample.as_millis(),
        raw_us
    );
}
