//! The schemas in `schemas/` accept their examples and reject the invalid
//! ones; and what the broker itself produces validates against them.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{key, Env, StoreKind};
use serde_json::{json, Value};

fn examples(dir: &Path) -> Vec<(String, Value)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn schema_for(example: &str) -> String {
    format!("{}.schema.json", example.split('.').next().unwrap())
}

#[test]
fn every_example_validates_and_every_invalid_example_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
    let good = examples(&root);
    assert_eq!(
        good.len(),
        broker::schemas::FILES.len(),
        "one example per schema"
    );
    for (name, v) in good {
        let validator = broker::schemas::compile(&schema_for(&name)).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    let bad = examples(&root.join("invalid"));
    assert!(bad.len() >= 20);
    for (name, v) in bad {
        let validator = broker::schemas::compile(&schema_for(&name)).unwrap();
        assert!(!validator.is_valid(&v), "{name} should be refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_broker_produces_matches_its_schemas() {
    let env = Env::start(StoreKind::Memory).await;
    let (a, b) = (key(1), key(2));
    let (id, roster) = env.frozen_session(&[&a, &b]).await;
    let check = |schema: &str, v: &Value| {
        let validator = broker::schemas::compile(schema).unwrap();
        let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{schema}: {errors:?}\n{v}");
    };
    check("roster.schema.json", &roster);
    let (_, s) = env.get(&format!("/v1/sessions/{id}"), None).await;
    check("publication.schema.json", &s["publication"]);
    check("manifest.schema.json", &s["publication"]["manifest"]);
    let (_, problem) = env.get("/v1/sessions/nosuchsession", None).await;
    check("problem.schema.json", &problem);
    check(
        "challenge-request.schema.json",
        &json!({"purpose": "join", "session": id}),
    );
    env.stop().await;
}
