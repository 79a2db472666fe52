//! The neuron-set statistics (sizes, sharing) with their 95% bootstrap
//! intervals; the bootstrap itself is [`crate::stats`].

use crate::engine::Neuron;
use kn_shared::experiment::{SetCi, SetStats};
use std::collections::BTreeSet;

pub use crate::stats::{estimate, estimate_with, mean, median, RESAMPLES};

/// Mean `|A ∩ B|` over pairs of the resampled facts `pick` (two draws of the
/// same fact are not a pair), within one relation (`same`) or across two.
fn shared(pick: &[usize], rel: &[usize], sets: &[BTreeSet<Neuron>], same: bool) -> Option<f64> {
    let (mut sum, mut n) = (0usize, 0usize);
    for (x, &a) in pick.iter().enumerate() {
        for &b in &pick[x + 1..] {
            if a != b && (rel[a] == rel[b]) == same {
                sum += sets[a].intersection(&sets[b]).count();
                n += 1;
            }
        }
    }
    (n > 0).then(|| sum as f64 / n as f64)
}

/// Sizes, sharing and layers of one kind of neuron set over facts (`rel[i]`
/// is fact `i`'s relation), with confidence intervals.
pub fn set_stats(sets: &[Vec<Neuron>], rel: &[usize], layers: usize, seed: u64) -> SetStats {
    let sets_b: Vec<BTreeSet<Neuron>> = sets.iter().map(|s| s.iter().copied().collect()).collect();
    let mut per_layer = vec![0; layers];
    for s in &sets_b {
        for n in s {
            per_layer[n.layer] += 1;
        }
    }
    let sizes: Vec<f64> = sets.iter().map(|s| s.len() as f64).collect();
    let n = sets.len();
    // Pairs grow as n²: above 600 facts, fewer resamples would be needed to
    // keep the report quick; this run's samples are far below that.
    let intra = estimate_with(n, seed ^ 1, |p| shared(p, rel, &sets_b, true)).unwrap_or_default();
    let inter = estimate_with(n, seed ^ 2, |p| shared(p, rel, &sets_b, false)).unwrap_or_default();
    let mut by_rel: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for (i, s) in sizes.iter().enumerate() {
        by_rel.entry(rel[i]).or_default().push(*s);
    }
    let outside = by_rel
        .values()
        .filter(|v| mean(v.iter().copied()).is_some_and(|m| !(2.0..=5.0).contains(&m)))
        .count();
    SetStats {
        per_fact: mean(sizes.iter().copied()).unwrap_or(0.0),
        empty_facts: sets.iter().filter(|s| s.is_empty()).count(),
        shared_intra: intra.mean,
        shared_inter: inter.mean,
        per_layer,
        ci: Some(SetCi {
            per_fact: estimate(&sizes, seed).unwrap_or_default(),
            shared_intra: intra,
            shared_inter: inter,
            relations_outside_2_5: outside,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_cover_the_mean_and_shrink_with_more_facts() {
        let small: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let large: Vec<f64> = (0..1000).map(|i| (i % 10) as f64).collect();
        let a = estimate(&small, 0).unwrap();
        let b = estimate(&large, 0).unwrap();
        assert!(
            (a.mean - 4.5).abs() < 1e-12 && a.lo < 4.5 && a.hi > 4.5,
            "{a:?}"
        );
        assert!(b.hi - b.lo < (a.hi - a.lo) / 5.0, "{a:?} {b:?}");
        // Seeded: the same interval every time.
        assert_eq!(estimate(&small, 0), Some(a));
        assert_eq!(estimate(&[], 0), None);
        assert_eq!(estimate(&[f64::NAN, 2.0], 0).unwrap().n, 1);
    }

    #[test]
    fn sharing_counts_pairs_within_and_across_relations() {
        let n = |l, i| Neuron { layer: l, index: i };
        let sets = vec![
            vec![n(0, 1), n(0, 2)],
            vec![n(0, 1)],
            vec![n(0, 2)],
            vec![n(0, 9)],
        ];
        let rel = vec![0, 0, 1, 1];
        let s = set_stats(&sets, &rel, 1, 0);
        // Within: (0,1) share 1, (2,3) share 0 → 0.5. Across: (0,2) 1, (0,3) 0, (1,2) 0, (1,3) 0 → 0.25.
        assert_eq!((s.shared_intra, s.shared_inter), (0.5, 0.25));
        assert_eq!(s.per_fact, 1.25);
        assert_eq!(s.ci.unwrap().relations_outside_2_5, 2);
    }
}
