//! Cutting work into passes that fit a rows × tokens budget.
//!
//! A pass pads its rows to the longest of them, so what it holds in memory, and
//! what it costs, is its rows times that length. Every batched part of the
//! engine (the traces, the interventions' and the edits' copies, the report's
//! BingRel passes) cuts its list the same way: in order, greedily, each run as
//! long as the budget allows, an item over the budget alone in its own run.

use super::Query;
use std::ops::Range;

/// Default of [`super::attribution::Options::max_row_tokens`]: prompts up to 32 tokens keep all
/// 256 copies of `max_batch` in one pass.
pub const MAX_ROW_TOKENS: usize = 8192;

/// Consecutive runs of `items`, each `(rows, tokens)`, whose rows padded to the
/// run's longest hold at most `budget` rows × tokens; an item over the budget
/// runs alone. The runs cover the items in order; none for no items.
pub(crate) fn runs(
    items: impl IntoIterator<Item = (usize, usize)>,
    budget: usize,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut end, mut rows, mut longest) = (0, 0, 0, 0);
    for (i, (r, l)) in items.into_iter().enumerate() {
        if i > start && (rows + r) * longest.max(l) > budget {
            out.push(start..i);
            (start, rows, longest) = (i, 0, 0);
        }
        rows += r;
        longest = longest.max(l);
        end = i + 1;
    }
    if end > start {
        out.push(start..end);
    }
    out
}

/// [`runs`] of whole queries: each is its answer's steps (one row each), as
/// long as its longest step.
pub(crate) fn by_query(queries: &[Query], budget: usize) -> Vec<Range<usize>> {
    runs(
        queries.iter().map(|q| (q.answer.len(), q.longest_step())),
        budget,
    )
}

#[cfg(test)]
mod tests {
    use super::runs;

    /// Cost of a run as a pass pays it.
    fn cost(items: &[(usize, usize)]) -> usize {
        items.iter().map(|x| x.0).sum::<usize>() * items.iter().map(|x| x.1).max().unwrap_or(0)
    }

    #[test]
    fn runs_cover_in_order_fit_and_are_as_long_as_the_budget_allows() {
        // A small deterministic generator: no dependency for a test's numbers.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n) as usize
        };
        for _ in 0..500 {
            let len = next(12);
            let items: Vec<(usize, usize)> =
                (0..len).map(|_| (1 + next(4), 1 + next(30))).collect();
            let budget = 1 + next(150);
            let got = runs(items.iter().copied(), budget);
            let mut at = 0;
            for (j, r) in got.iter().enumerate() {
                assert_eq!(
                    r.start, at,
                    "runs are consecutive: {items:?} {budget} {got:?}"
                );
                assert!(r.end > r.start, "no empty run");
                let run = &items[r.clone()];
                assert!(
                    run.len() == 1 || cost(run) <= budget,
                    "fits: {run:?} {budget}"
                );
                if j + 1 < got.len() {
                    assert!(
                        cost(&items[r.start..=r.end]) > budget,
                        "the next item would not have fit: {items:?} {budget} {got:?}"
                    );
                }
                at = r.end;
            }
            assert_eq!(at, items.len(), "every item is in a run");
        }
    }

    #[test]
    fn an_item_over_the_budget_runs_alone_and_none_gives_no_run() {
        assert_eq!(runs([(1, 5), (3, 50), (1, 5)], 20), vec![0..1, 1..2, 2..3]);
        assert_eq!(runs([(2, 5), (2, 5)], 20), vec![0..2]);
        assert!(runs(std::iter::empty(), 20).is_empty());
    }
}
