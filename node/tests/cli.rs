//! The identity and credential commands, run as a real process: JSON on
//! stdout, exit 0 valid, 1 checked-and-invalid, 2 usage or input error.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mpc-node"))
}

/// A scratch working directory for one test, removed when the test ends.
fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("mpc-node-cli-{name}-"))
        .tempdir()
        .unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).args(args).output().unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn new_id(dir: &Path, file: &str) -> String {
    let out = run(dir, &["id", "new", "--out", file]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    json_of(&out)["did"].as_str().unwrap().to_owned()
}

fn write(dir: &Path, file: &str, out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join(file), &out.stdout).unwrap();
}

#[test]
fn a_seeded_identity_prints_the_known_did() {
    let tmp = tempdir("seed");
    let dir = tmp.path();
    let seed = "0000000000000000000000000000000000000000000000000000000000000000";
    let out = run(dir, &["id", "new", "--seed", seed, "--out", "k.json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json_of(&out)["did"],
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    );
    let shown = json_of(&run(dir, &["id", "show", "k.json"]));
    assert_eq!(
        shown["did"],
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    );
}

#[test]
fn resolve_prints_the_did_document_and_rejects_garbage_with_status_2() {
    let tmp = tempdir("resolve");
    let dir = tmp.path();
    let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
    let doc = json_of(&run(dir, &["id", "resolve", did]));
    assert_eq!(doc["id"], did);
    assert_eq!(doc["verificationMethod"][0]["type"], "Multikey");
    let out = run(dir, &["id", "resolve", "did:web:example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did:key"));
}

#[test]
fn a_world_readable_key_file_is_refused_with_the_fix() {
    let tmp = tempdir("perms");
    let dir = tmp.path();
    new_id(dir, "k.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("k.json"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let out = run(dir, &["id", "show", "k.json"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
}

#[test]
fn issue_present_and_verify_round_trip_for_both_suites() {
    for suite in ["eddsa-rdfc-2022", "eddsa-jcs-2022"] {
        let tmp = tempdir(suite);
        let dir = tmp.path();
        new_id(dir, "issuer.json");
        let alice = new_id(dir, "alice.json");
        let vc = run(
            dir,
            &[
                "credential",
                "issue",
                "--key",
                "issuer.json",
                "--subject",
                &alice,
                "--type",
                "MpcParticipantCredential",
                "--claims",
                r#"{"organization":"Uni A"}"#,
                "--valid-from",
                "2026-01-01T00:00:00Z",
                "--valid-until",
                "2027-01-01T00:00:00Z",
                "--suite",
                suite,
            ],
        );
        write(dir, "vc.json", &vc);
        let ok = run(
            dir,
            &[
                "credential",
                "verify",
                "vc.json",
                "--now",
                "2026-06-01T00:00:00Z",
            ],
        );
        assert_eq!(ok.status.code(), Some(0), "{suite}");
        assert_eq!(json_of(&ok)["claims"]["organization"], "Uni A");

        let expired = run(
            dir,
            &[
                "credential",
                "verify",
                "vc.json",
                "--now",
                "2027-06-01T00:00:00Z",
            ],
        );
        assert_eq!(expired.status.code(), Some(1));
        assert_eq!(json_of(&expired)["valid"], false);
        assert!(String::from_utf8_lossy(&expired.stderr).contains("expired"));

        let vp = run(
            dir,
            &[
                "credential",
                "present",
                "--key",
                "alice.json",
                "--challenge",
                "c-1",
                "--domain",
                "broker.example",
                "--suite",
                suite,
                "vc.json",
            ],
        );
        write(dir, "vp.json", &vp);
        let verify_vp = |challenge: &str| {
            run(
                dir,
                &[
                    "credential",
                    "verify-presentation",
                    "--challenge",
                    challenge,
                    "--domain",
                    "broker.example",
                    "vp.json",
                    "--now",
                    "2026-06-01T00:00:00Z",
                ],
            )
        };
        let ok = verify_vp("c-1");
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert_eq!(json_of(&ok)["holder"], alice.as_str());
        let replay = verify_vp("c-2");
        assert_eq!(replay.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&replay.stderr).contains("challenge"));
    }
}

#[test]
fn a_tampered_credential_is_invalid_with_status_1() {
    let tmp = tempdir("tamper");
    let dir = tmp.path();
    new_id(dir, "issuer.json");
    let alice = new_id(dir, "alice.json");
    let vc = run(
        dir,
        &[
            "credential",
            "issue",
            "--key",
            "issuer.json",
            "--subject",
            &alice,
            "--type",
            "MpcParticipantCredential",
            "--claims",
            r#"{"role":"analyst"}"#,
        ],
    );
    let mut doc: Value = serde_json::from_slice(&vc.stdout).unwrap();
    doc["credentialSubject"]["role"] = "admin".into();
    std::fs::write(dir.join("vc.json"), doc.to_string()).unwrap();
    let out = run(dir, &["credential", "verify", "vc.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
}

#[test]
fn unreadable_or_malformed_input_exits_2_with_a_message() {
    let tmp = tempdir("input");
    let dir = tmp.path();
    let out = run(dir, &["credential", "verify", "missing.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
    std::fs::write(dir.join("bad.json"), "{not json").unwrap();
    let out = run(dir, &["credential", "verify", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    std::fs::write(dir.join("arr.json"), "[1,2]").unwrap();
    let out = run(dir, &["credential", "verify", "arr.json"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        dir,
        &[
            "credential",
            "issue",
            "--key",
            "nokey.json",
            "--subject",
            "x",
            "--type",
            "T",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run(dir, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    // A wait so long its deadline would overflow is a usage error, not a panic.
    let out = run(
        dir,
        &[
            "join",
            "--broker",
            "http://127.0.0.1:1",
            "--session",
            "s",
            "--key",
            "k.json",
            "--credential",
            "vc.json",
            "--wait",
            "18446744073709551615",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--wait") && stderr.contains("86400"),
        "{stderr}"
    );
}

/// Session ids are base64url, so an organizer's tool may hand out one beginning with `-`: the
/// commands that take an id must read it as the id, not as an unknown option.
#[test]
fn a_session_id_beginning_with_a_dash_is_taken_as_the_id() {
    let tmp = tempdir("dash-id");
    let dir = tmp.path();
    let id = "-cAbCdEfGh0123456789_";
    for args in [
        vec!["session", "show", id, "--broker", "http://127.0.0.1:1"],
        vec![
            "session",
            "seal",
            id,
            "--key",
            "k.json",
            "--broker",
            "http://127.0.0.1:1",
        ],
        vec![
            "join",
            "--broker",
            "http://127.0.0.1:1",
            "--session",
            id,
            "--key",
            "k.json",
            "--credential",
            "vc.json",
        ],
    ] {
        let out = run(dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("unexpected argument") && !stderr.contains("Usage:"),
            "{args:?}: {stderr}"
        );
        // It got past the command line: to the key file, or to the (absent) broker.
        assert!(
            stderr.contains("k.json") || stderr.contains("127.0.0.1:1"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["id", "--help"],
        vec!["id", "new", "--help"],
        vec!["id", "show", "--help"],
        vec!["id", "resolve", "--help"],
        vec!["credential", "--help"],
        vec!["credential", "issue", "--help"],
        vec!["credential", "verify", "--help"],
        vec!["credential", "present", "--help"],
        vec!["credential", "verify-presentation", "--help"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}
