//! Uncertainty: means with 95% percentile-bootstrap intervals. The experiment
//! report's every figure and the web app's specificity intervals are these.

use kn_shared::experiment::Estimate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
