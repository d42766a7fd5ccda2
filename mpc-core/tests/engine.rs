//! Engine behaviour over the in-memory simulation: sharing algebra, multiplication, comparisons,
//! shuffles and their distribution.

mod common;

use common::*;
use mpc_core::shamir::{reconstruct, share};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_t_plus_one_shares_reconstruct(secret in any::<u64>(), m in 1usize..8, seed in any::<u64>(), pick in any::<u64>()) {
        let f = field();
        let secret = f.from_u64(secret);
        let t = (m - 1) / 2;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let shares = share(&f, &secret, t, m, &mut rng).expect("share");
        // A pseudo-random subset of t+1 parties, in a pseudo-random order.
        let mut idx: Vec<usize> = (0..m).collect();
        let mut p = pick;
        for i in (1..m).rev() {
            idx.swap(i, (p % (i as u64 + 1)) as usize);
            p /= i as u64 + 1;
        }
        let subset: Vec<(usize, u64)> = idx[..t + 1].iter().map(|&i| (i, shares[i])).collect();
        prop_assert_eq!(reconstruct(&f, &subset, t).expect("enough"), secret);
    }

    #[test]
    fn fewer_than_t_plus_one_shares_do_not_reconstruct(m in 3usize..8) {
        let f = field();
        let t = (m - 1) / 2;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let shares = share(&f, &5, t, m, &mut rng).expect("share");
        let subset: Vec<(usize, u64)> = (0..t).map(|i| (i, shares[i])).collect();
        prop_assert!(reconstruct(&f, &subset, t).is_err());
    }

    #[test]
    fn sharing_is_linear(a in any::<u64>(), b in any::<u64>(), c in any::<u64>(), m in 1usize..8, seed in any::<u64>()) {
        let f = field();
        let (a, b, c) = (f.from_u64(a), f.from_u64(b), f.from_u64(c));
        let t = (m - 1) / 2;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sa = share(&f, &a, t, m, &mut rng).expect("share");
        let sb = share(&f, &b, t, m, &mut rng).expect("share");
        let combo: Vec<(usize, u64)> = (0..m)
            .map(|i| (i, f.add(&f.mul(&c, &sa[i]), &sb[i])))
            .collect();
        prop_assert_eq!(reconstruct(&f, &combo, t).expect("enough"), f.add(&f.mul(&c, &a), &b));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn multiplication_and_inner_products_are_correct(
        a in proptest::collection::vec(any::<i32>(), 1..6),
        b in proptest::collection::vec(any::<i32>(), 6),
        m in prop::sample::select(vec![1usize, 3, 5]),
        prss in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let n = a.len();
        let b = b[..n].to_vec();
        let (a2, b2) = (a.clone(), b.clone());
        let outs = mpc!(m, config(None, prss), seed, [a2, b2], |rt| {
            let f = rt.field().clone();
            // Party 0 supplies both vectors.
            let mine: Vec<u64> = if rt.party() == 0 {
                a2.iter().chain(&b2).map(|&v| f.from_i64(i64::from(v))).collect()
            } else {
                Vec::new()
            };
            let shared = rt.input(&mine).await?.swap_remove(0);
            let (x, y) = shared.split_at(n);
            let prods = rt.mul(x, y).await?;
            let ip = rt.inner_products(&[(x, y)]).await?;
            let mut all = prods;
            all.extend(ip);
            rt.open(&all).await
        });
        // Up to five products of 2^62 overflow i64 and exceed p / 2: compare modulo p.
        let modp = |v: i128| v.rem_euclid(i128::from(P64)) as u64;
        let expect: Vec<i128> = a.iter().zip(&b).map(|(x, y)| i128::from(*x) * i128::from(*y)).collect();
        let expect_mod: Vec<u64> = expect.iter().map(|&v| modp(v)).collect();
        for out in outs {
            prop_assert_eq!(&out[..n], &expect_mod[..]);
            prop_assert_eq!(out[n], modp(expect.iter().sum::<i128>()));
        }
    }
}

#[test]
fn comparisons_agree_with_plaintext_on_edge_values() {
    let l = 32u32;
    let edge = [0i64, -1, 1, -(1 << 31), (1 << 31) - 1, 12345, -12345, 2, -2];
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in &edge {
        for &y in &edge {
            a.push(x);
            b.push(y);
        }
    }
    for (m, t, prss) in [
        (1, None, true),
        (3, None, true),
        (3, None, false),
        (5, Some(1), true),
    ] {
        let (a2, b2) = (a.clone(), b.clone());
        let outs = mpc!(m, config(t, prss), 7, [a2, b2], |rt| {
            let f = rt.field().clone();
            let x: Vec<u64> = a2.iter().map(|&v| f.from_i64(v)).collect();
            let y: Vec<u64> = b2.iter().map(|&v| f.from_i64(v)).collect();
            // Public constants are valid (degree-0) sharings.
            let lt = rt.less_than(&x, &y, l).await?;
            let eq = rt.equal(&x, &y, l).await?;
            let ltz = rt.less_than_zero(&x, l).await?;
            let mut all = lt;
            all.extend(eq);
            all.extend(ltz);
            rt.open(&all).await
        });
        let n = a.len();
        for out in outs {
            for i in 0..n {
                assert_eq!(out[i], u64::from(a[i] < b[i]), "m={m} lt {} {}", a[i], b[i]);
                assert_eq!(
                    out[n + i],
                    u64::from(a[i] == b[i]),
                    "m={m} eq {} {}",
                    a[i],
                    b[i]
                );
                assert_eq!(out[2 * n + i], u64::from(a[i] < 0), "m={m} ltz {}", a[i]);
            }
        }
    }
}

#[test]
fn random_bits_are_bits_and_not_constant() {
    let outs = mpc!(3, config(None, true), 3, |rt| {
        let bits = rt.random_bits(200).await?;
        rt.open(&bits).await
    });
    let ones = outs[0].iter().filter(|&&b| b == 1).count();
    assert!(outs[0].iter().all(|&b| b <= 1));
    assert!((60..140).contains(&ones), "{ones} ones of 200");
    assert!(outs.iter().all(|o| o == &outs[0]));
}

fn is_permutation(p: &[u64]) -> bool {
    let mut s = p.to_vec();
    s.sort_unstable();
    s.iter().enumerate().all(|(i, &v)| v == i as u64)
}

#[test]
fn permutations_are_permutations_and_derangements_have_no_fixed_point() {
    for (m, prss) in [(1, true), (3, true), (3, false), (5, true)] {
        let outs = mpc!(m, config(None, prss), 11, |rt| {
            let mut opened = Vec::new();
            for n in [1usize, 2, 3, 5, 8] {
                let p = rt.random_permutation(n).await?;
                opened.push(rt.open(&p).await?);
            }
            for (n, c) in [(2usize, 1usize), (3, 2), (6, 1), (9, 3)] {
                let d = rt.random_derangement(n, c).await?;
                opened.push(rt.open(&d).await?);
            }
            Ok(opened)
        });
        for p in &outs[0][..5] {
            assert!(is_permutation(p), "{p:?}");
        }
        for d in &outs[0][5..] {
            assert!(is_permutation(d), "{d:?}");
            assert!(d.iter().enumerate().all(|(i, &v)| v != i as u64), "{d:?}");
        }
        assert!(outs.iter().all(|o| o == &outs[0]));
    }
}

#[test]
fn unit_vectors_have_exactly_one_one() {
    let outs = mpc!(3, config(None, true), 5, |rt| {
        let sizes = [1usize, 2, 3, 5, 6, 7, 12];
        let units = rt.random_unit_vectors(&sizes).await?;
        let flat: Vec<u64> = units.into_iter().flatten().collect();
        rt.open(&flat).await
    });
    let mut rest = outs[0].as_slice();
    for n in [1usize, 2, 3, 5, 6, 7, 12] {
        let (u, r) = rest.split_at(n);
        rest = r;
        assert_eq!(u.iter().filter(|&&v| v == 1).count(), 1, "{u:?}");
        assert_eq!(u.iter().filter(|&&v| v == 0).count(), n - 1, "{u:?}");
    }
}

/// Chi-square statistic of observed counts against a uniform expectation.
fn chi_square(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn derangements_of_four_are_uniform() {
    // 9 derangements of 4 elements; 450 draws; chi-square with 8 degrees of freedom must stay
    // below 26.12 (p = 0.001). Fixed seed: deterministic, cannot flake.
    let draws = 450;
    let outs = mpc!(3, config(None, true), 2024, |rt| {
        let mut all = Vec::new();
        for _ in 0..draws {
            let d = rt.random_derangement(4, 1).await?;
            all.push(rt.open(&d).await?);
        }
        Ok(all)
    });
    let mut kinds: Vec<Vec<u64>> = outs[0].clone();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 9, "all 9 derangements occur");
    let counts: Vec<usize> = kinds
        .iter()
        .map(|k| outs[0].iter().filter(|d| *d == k).count())
        .collect();
    let chi = chi_square(&counts);
    assert!(chi < 26.12, "chi-square {chi} for counts {counts:?}");
}

#[test]
fn permutations_of_three_are_uniform() {
    // 6 permutations, 600 draws, 5 degrees of freedom: critical value 20.52 at p = 0.001.
    let outs = mpc!(3, config(None, true), 99, |rt| {
        let mut all = Vec::new();
        for _ in 0..600 {
            let p = rt.random_permutation(3).await?;
            all.push(rt.open(&p).await?);
        }
        Ok(all)
    });
    let mut kinds = outs[0].clone();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 6);
    let counts: Vec<usize> = kinds
        .iter()
        .map(|k| outs[0].iter().filter(|p| *p == k).count())
        .collect();
    let chi = chi_square(&counts);
    assert!(chi < 20.52, "chi-square {chi} for counts {counts:?}");
}

#[test]
fn unit_vectors_are_uniform() {
    // One-hot vectors of 2^k entries with the rejection test at the end (sizes 3, 5, 6, 7), and
    // one with no rejection (8): 700 draws each, chi-square against uniform positions at
    // p = 0.001 (critical values for 2, 4, 5, 6, 7 degrees of freedom).
    let sizes = [3usize, 5, 6, 7, 8];
    let critical = [13.82, 18.47, 20.52, 22.46, 24.32];
    let outs = mpc!(3, config(None, true), 31, [sizes], |rt| {
        let mut opened = Vec::new();
        for _ in 0..7 {
            let batch: Vec<usize> = (0..100).flat_map(|_| sizes).collect();
            let units = rt.random_unit_vectors(&batch).await?;
            let flat: Vec<u64> = units.into_iter().flatten().collect();
            opened.extend(rt.open(&flat).await?);
        }
        Ok(opened)
    });
    let mut counts: Vec<Vec<usize>> = sizes.iter().map(|&s| vec![0; s]).collect();
    let mut rest = outs[0].as_slice();
    while !rest.is_empty() {
        for (k, &s) in sizes.iter().enumerate() {
            let (u, r) = rest.split_at(s);
            rest = r;
            assert_eq!(u.iter().filter(|&&v| v == 1).count(), 1, "{u:?}");
            assert!(u.iter().all(|&v| v <= 1), "{u:?}");
            let pos = u.iter().position(|&v| v == 1).expect("one");
            counts[k][pos] += 1;
        }
    }
    for (k, c) in counts.iter().enumerate() {
        let chi = chi_square(c);
        assert!(
            chi < critical[k],
            "size {}: chi-square {chi} for {c:?}",
            sizes[k]
        );
    }
}

#[test]
fn shuffles_of_four_are_uniform() {
    // 24 permutations, 2400 draws (200 lists per call, in lockstep), 23 degrees of freedom:
    // critical value 49.73 at p = 0.001.
    let outs = mpc!(3, config(None, true), 17, |rt| {
        let f = rt.field().clone();
        let id: Vec<u64> = (0..4).map(|i| f.from_u64(i)).collect();
        let mut all = Vec::new();
        for _ in 0..12 {
            let shuffled = rt.shuffle(vec![id.clone(); 200]).await?;
            for p in shuffled {
                all.push(rt.open(&p).await?);
            }
        }
        Ok(all)
    });
    let mut kinds = outs[0].clone();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 24);
    let counts: Vec<usize> = kinds
        .iter()
        .map(|k| outs[0].iter().filter(|p| *p == k).count())
        .collect();
    let chi = chi_square(&counts);
    assert!(chi < 49.73, "chi-square {chi} for counts {counts:?}");
}

#[test]
fn derangements_of_five_are_uniform_with_and_without_prss() {
    // 44 derangements of 5, 1320 draws, 43 degrees of freedom: critical value 77.4 at
    // p = 0.001. Without PRSS the zero-sharing pool and bit generation take other paths.
    for prss in [true, false] {
        let outs = mpc!(3, config(None, prss), 5, |rt| {
            let mut all = Vec::new();
            for _ in 0..1320 {
                let d = rt.random_derangement(5, 1).await?;
                all.push(rt.open(&d).await?);
            }
            Ok(all)
        });
        let mut kinds = outs[0].clone();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 44, "prss {prss}");
        assert!(kinds
            .iter()
            .all(|d| d.iter().enumerate().all(|(i, &v)| v != i as u64)));
        let counts: Vec<usize> = kinds
            .iter()
            .map(|k| outs[0].iter().filter(|p| *p == k).count())
            .collect();
        let chi = chi_square(&counts);
        assert!(
            chi < 77.4,
            "prss {prss}: chi-square {chi} for counts {counts:?}"
        );
    }
}
