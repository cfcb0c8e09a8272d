//! Per-frame and per-clip figures.

use serde::Serialize;

/// Area under the ROC curve of `scores` for `labels` (true = failure), ties counted half; `None` without
/// both classes.
pub fn auroc(labels: &[bool], scores: &[f32]) -> Option<f64> {
    let mut v: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0; // ranks i+1..=j
        rank_sum += avg * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Confusion figures at one threshold (a sample is called a failure when its score is at or above it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AtThreshold {
    pub threshold: f32,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub fpr: Option<f64>,
}

pub fn at_threshold(labels: &[bool], scores: &[f32], threshold: f32) -> AtThreshold {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (&y, &s) in labels.iter().zip(scores) {
        match (y, s >= threshold) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    let ratio = |a: usize, b: usize| (a + b > 0).then(|| a as f64 / (a + b) as f64);
    AtThreshold {
        threshold,
        tp,
        fp,
        tn,
        fn_,
        precision: ratio(tp, fp),
        recall: ratio(tp, fn_),
        fpr: ratio(fp, tn),
    }
}

/// Recall at the lowest threshold whose false-positive rate is at most `max_fpr`, with that threshold.
pub fn recall_at_fpr(labels: &[bool], scores: &[f32], max_fpr: f64) -> Option<(f64, f32)> {
    let mut neg: Vec<f32> = labels.iter().zip(scores).filter(|x| !*x.0).map(|x| *x.1).collect();
    if neg.is_empty() || !labels.iter().any(|&y| y) {
        return None;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    // Allowed false positives; the threshold sits just above the next negative score.
    let allowed = (max_fpr * neg.len() as f64).floor() as usize;
    let threshold = match neg.get(allowed) {
        Some(&s) => next_up(s),
        None => 0.0,
    };
    at_threshold(labels, scores, threshold).recall.map(|r| (r, threshold))
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    if x >= 0.0 {
        f32::from_bits(if x == 0.0 { 1 } else { bits + 1 })
    } else {
        f32::from_bits(bits - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn auroc_of_perfect_random_and_reversed_scores() {
        let y = [false, false, true, true];
        assert_eq!(auroc(&y, &[0.1, 0.2, 0.8, 0.9]), Some(1.0));
        assert_eq!(auroc(&y, &[0.9, 0.8, 0.2, 0.1]), Some(0.0));
        assert_eq!(auroc(&y, &[0.5, 0.5, 0.5, 0.5]), Some(0.5));
        assert_eq!(auroc(&[true, true], &[0.1, 0.2]), None);
    }

    #[test]
    fn precision_recall_and_fpr_at_a_threshold() {
        let m = at_threshold(&[true, true, false, false], &[0.9, 0.4, 0.6, 0.1], 0.5);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (1, 1, 1, 1));
        assert_eq!(m.precision, Some(0.5));
        assert_eq!(m.recall, Some(0.5));
    }

    #[test]
    fn recall_at_fpr_keeps_false_positives_within_the_budget() {
        let mut y = vec![false; 100];
        let mut s: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        y.extend([true, true]);
        s.extend([0.985, 0.5]);
        // 2 % of 100 negatives: 0.98 and 0.99 may be above; threshold just above 0.97.
        let (r, t) = recall_at_fpr(&y, &s, 0.02).unwrap();
        assert_eq!(r, 0.5);
        assert!(t > 0.97 && t < 0.975, "{t}");
    }

    proptest! {
        #[test]
        fn auroc_is_between_0_and_1_and_flips_with_the_scores(v in prop::collection::vec((prop::bool::ANY, 0f32..1.0), 2..60)) {
            let y: Vec<bool> = v.iter().map(|x| x.0).collect();
            let s: Vec<f32> = v.iter().map(|x| x.1).collect();
            let neg: Vec<f32> = s.iter().map(|x| -x).collect();
            if let (Some(a), Some(b)) = (auroc(&y, &s), auroc(&y, &neg)) {
                prop_assert!((0.0..=1.0).contains(&a));
                prop_assert!((a + b - 1.0).abs() < 1e-9);
            }
        }
    }
}
