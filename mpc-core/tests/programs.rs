//! Programs give the same outputs as a plaintext computation, for m = 1, 3, 5 and several t,
//! called by name with JSON parameters over the in-memory simulation.

use mpc_core::sim::{simulate, SimConfig};
use mpc_core::{run_program, Program, ProgramOutput, ProgramSpec, RuntimeConfig, Transport};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;

const SETUPS: &[(usize, Option<usize>, bool)] = &[
    (1, None, true),
    (3, None, true),
    (3, Some(0), true),
    (3, None, false),
    (5, None, true),
    (5, Some(1), true),
];

fn run_all(
    m: usize,
    t: Option<usize>,
    prss: bool,
    spec: serde_json::Value,
    inputs: Vec<Vec<i64>>,
) -> Vec<ProgramOutput> {
    let spec: ProgramSpec = serde_json::from_value(spec).expect("spec");
    let program = Program::try_from(&spec).expect("program");
    let config = RuntimeConfig {
        threshold: t,
        prss,
        ..RuntimeConfig::default()
    };
    simulate(m, &SimConfig::default(), move |mut tr| {
        let program = program.clone();
        let config = config.clone();
        let inputs = inputs.clone();
        async move {
            let me = tr.party_index();
            let rng = ChaCha20Rng::seed_from_u64(42 + me as u64);
            run_program(&program, &inputs[me], &mut tr, rng, &config).await
        }
    })
    .into_iter()
    .map(|r| r.expect("no panic").expect("program ran").output)
    .collect()
}

fn inputs_for(m: usize, per_party: usize, salt: i64) -> Vec<Vec<i64>> {
    (0..m)
        .map(|i| {
            (0..per_party)
                .map(|j| {
                    let v = (i as i64 * 7919 + j as i64 * 104_729 + salt) % 2_000_003;
                    if (i + j) % 3 == 0 {
                        -v
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn sum_and_stats_match_plaintext() {
    for &(m, t, prss) in SETUPS {
        let inputs = inputs_for(m, 3, 11);
        let flat: Vec<i64> = inputs.iter().flatten().copied().collect();
        let sum: i128 = flat.iter().map(|&v| i128::from(v)).sum();
        let outs = run_all(m, t, prss, json!({"name": "sum"}), inputs.clone());
        for out in outs {
            assert_eq!(
                out,
                ProgramOutput::Sum {
                    count: flat.len(),
                    sum
                }
            );
        }
        let outs = run_all(
            m,
            t,
            prss,
            json!({"name": "stats", "params": {"bits": 32}}),
            inputs,
        );
        let n = flat.len() as f64;
        let mean = sum as f64 / n;
        let var = flat.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        for out in outs {
            let ProgramOutput::Stats {
                count,
                sum: s,
                mean: mu,
                variance,
            } = out
            else {
                panic!("wrong output {out:?}")
            };
            assert_eq!((count, s), (flat.len(), sum));
            assert!((mu - mean).abs() < 1e-6 && (variance - var).abs() / var.max(1.0) < 1e-9);
        }
    }
}

#[test]
fn millionaires_finds_the_richest_party() {
    for &(m, t, prss) in SETUPS {
        let inputs: Vec<Vec<i64>> = (0..m).map(|i| vec![((i * 37) % 11) as i64 - 5]).collect();
        let best = (0..m)
            .max_by_key(|&i| (inputs[i][0], std::cmp::Reverse(i)))
            .expect("parties");
        for out in run_all(m, t, prss, json!({"name": "compare"}), inputs) {
            assert_eq!(out, ProgramOutput::Millionaires { richest: best });
        }
    }
}

#[test]
fn millionaires_breaks_ties_towards_the_lowest_index() {
    let inputs = vec![vec![3], vec![9], vec![9]];
    for out in run_all(3, None, true, json!({"name": "millionaires"}), inputs) {
        assert_eq!(out, ProgramOutput::Millionaires { richest: 1 });
    }
}

#[test]
fn sort_matches_plaintext_including_edge_values() {
    for &(m, t, prss) in SETUPS {
        let mut inputs = inputs_for(m, 2, 5);
        inputs[0].extend([i64::from(i32::MIN), i64::from(i32::MAX), 0, -1]);
        let mut expect: Vec<i64> = inputs.iter().flatten().copied().collect();
        expect.sort_unstable();
        for out in run_all(m, t, prss, json!({"name": "sort"}), inputs) {
            assert_eq!(
                out,
                ProgramOutput::Sort {
                    sorted: expect.clone()
                }
            );
        }
    }
}

#[test]
fn secret_santa_gives_each_party_only_its_own_assignee() {
    for &(m, t, prss) in SETUPS.iter().filter(|s| s.0 >= 3) {
        let outs = run_all(m, t, prss, json!({"name": "secret-santa"}), vec![vec![]; m]);
        let mut perm = vec![usize::MAX; m];
        for (party, out) in outs.iter().enumerate() {
            let ProgramOutput::SecretSanta { n, assignments } = out else {
                panic!("wrong output")
            };
            assert_eq!(*n, m);
            assert_eq!(assignments.len(), 1, "one assignee per party");
            assert_eq!(assignments[0].giver, party);
            perm[party] = assignments[0].receiver;
        }
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..m).collect::<Vec<_>>());
        assert!(perm.iter().enumerate().all(|(i, &r)| i != r));
    }
}

#[test]
fn secret_santa_with_more_people_than_parties_can_reveal_all() {
    for &(m, t, prss) in SETUPS {
        let spec =
            json!({"name": "secret-santa", "params": {"n": 7, "reveal": "all", "candidates": 2}});
        let outs = run_all(m, t, prss, spec, vec![vec![]; m]);
        let ProgramOutput::SecretSanta { n, assignments } = &outs[0] else {
            panic!("wrong output")
        };
        assert_eq!((*n, assignments.len()), (7, 7));
        assert!(assignments.iter().all(|a| a.giver != a.receiver));
        assert!(outs.iter().all(|o| o == &outs[0]));
    }
}

#[test]
fn inner_product_of_long_vectors_matches_plaintext() {
    for &(m, t, prss) in SETUPS {
        // 2 * 1500 values in total, spread over the parties.
        let total = 3000;
        let per = total / m;
        let mut inputs = inputs_for(m, per, 3);
        let extra = total - per * m;
        inputs[m - 1].extend((0..extra as i64).map(|v| v * 1000 - 7));
        let flat: Vec<i64> = inputs.iter().flatten().copied().collect();
        let (a, b) = flat.split_at(flat.len() / 2);
        let expect: i128 = a
            .iter()
            .zip(b)
            .map(|(x, y)| i128::from(*x) * i128::from(*y))
            .sum();
        for out in run_all(m, t, prss, json!({"name": "inner-product"}), inputs) {
            assert_eq!(
                out,
                ProgramOutput::InnerProduct {
                    length: 1500,
                    value: expect
                }
            );
        }
    }
}

#[test]
fn programs_are_found_by_name_and_bad_parameters_are_rejected() {
    for name in mpc_core::programs::PROGRAM_NAMES {
        let p = Program::from_name(name, &serde_json::Value::Null).expect("known");
        let round_trip = Program::try_from(&p.spec()).expect("round trip");
        assert_eq!(round_trip, p);
    }
    assert!(Program::from_name("nope", &json!({})).is_err());
    assert!(Program::from_name("sort", &json!({"bits": 99})).is_err());
    assert!(Program::from_name("sort", &json!({"bitz": 3})).is_err());
    assert!(Program::from_name("secret-santa", &json!({"n": 1})).is_err());
}

#[test]
fn own_inputs_out_of_range_are_rejected_before_sending() {
    let program = Program::from_name("sum", &json!({"bits": 8})).expect("program");
    let mut mesh = mpc_core::sim::memory_mesh(1, &SimConfig::default());
    let rng = ChaCha20Rng::seed_from_u64(1);
    let r = futures::executor::block_on(run_program(
        &program,
        &[200],
        &mut mesh[0],
        rng,
        &RuntimeConfig::default(),
    ));
    assert!(matches!(
        r,
        Err(mpc_core::ProgramError::InputOutOfRange {
            value: 200,
            bits: 8
        })
    ));
}
