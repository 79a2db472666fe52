//! Uncertainty: means over facts with 95% bootstrap confidence intervals, and
//! the neuron-set statistics (sizes, sharing) with theirs.

use crate::engine::Neuron;
use kn_shared::experiment::{Estimate, SetCi, SetStats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// Bootstrap resamples behind every interval.
pub const RESAMPLES: usize = 1000;

pub fn mean(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (s, n) = v
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The 2.5th and 97.5th percentiles of `stats` (sorted in place).
fn interval(stats: &mut [f64]) -> (f64, f64) {
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((q * (stats.len() - 1) as f64).round() as usize).min(stats.len() - 1)];
    (at(0.025), at(0.975))
}

/// The mean of `values` (non-finite ones left out) with its percentile
/// bootstrap interval over `RESAMPLES` seeded resamples; `None` when empty.
pub fn estimate(values: &[f64], seed: u64) -> Option<Estimate> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let m = mean(v.iter().copied())?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            (0..v.len())
                .map(|_| v[rng.random_range(0..v.len())])
                .sum::<f64>()
                / v.len() as f64
        })
        .collect();
    let (lo, hi) = interval(&mut stats);
    Some(Estimate {
        mean: m,
        lo,
        hi,
        n: v.len(),
    })
}

/// A bootstrap over units (facts) of a statistic computed from the resampled
/// units' indices; `stat` returns `None` where a resample has nothing to
/// measure (such resamples are skipped).
pub fn estimate_with(
    units: usize,
    seed: u64,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Estimate> {
    let all: Vec<usize> = (0..units).collect();
    let m = stat(&all)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let pick: Vec<usize> = (0..units).map(|_| rng.random_range(0..units)).collect();
            stat(&pick)
        })
        .collect();
    if stats.is_empty() {
        return None;
    }
    let (lo, hi) = interval(&mut stats);
    Some(Estimate {
        mean: m,
        lo,
        hi,
        n: units,
    })
}

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
