//! Evaluation of a network behind a mask, exactly as it will be deployed.
//!
//! The mask is the hard 0/1 mask (no straight-through arithmetic), so the
//! accuracy reported here is what a client sees on data sent by a server.

use burn::nn::loss::CrossEntropyLossConfig;

use super::metrics::VersionFractions;
use crate::data::batch::TensorSplit;
use crate::error::Result;
use crate::masks::Mask;
use crate::models::Network;

/// Results of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Mean Q of the hard masks (1 without a mask).
    pub q: f64,
    /// Mean fraction of input values the hard masks send (1 without a mask).
    pub bytes_fraction: f64,
    /// 10th, 50th and 90th percentile of per-input Q (dynamic masks vary).
    pub q_percentiles: [f64; 3],
    /// Items evaluated.
    pub items: usize,
    /// Xor selection: per xor mask, how often each version was chosen.
    pub version_fractions: Vec<VersionFractions>,
}

/// Predicted classes and the evaluation of `net` behind `mask` on `split`.
///
/// `net` and `mask` should be the non-autodiff copies (`Module::valid`).
pub fn evaluate_with_predictions(
    net: &Network,
    mask: Option<&Mask>,
    tau: f64,
    split: &TensorSplit,
    batch_size: usize,
) -> Result<(Evaluation, Vec<i64>)> {
    let device = split.device().clone();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mut correct = 0i64;
    let mut loss_sum = 0.0f64;
    let mut predictions = Vec::with_capacity(split.len);
    let (mut q_items, mut bytes_items) = (Vec::with_capacity(split.len), Vec::with_capacity(split.len));
    let labels = mask.map(|m| m.version_labels()).unwrap_or_default();
    let mut shares: Vec<Vec<f64>> = labels.iter().map(|(_, v)| vec![0.0; v.len()]).collect();
    for batch in split.ordered(batch_size) {
        let batch = batch?;
        let n = batch.labels.dims()[0];
        let x = match mask {
            Some(m) => {
                let hard = m.hard_batch(batch.images, tau);
                q_items.extend(hard.q);
                bytes_items.extend(hard.bytes);
                for (sum, batch) in shares.iter_mut().zip(&hard.version_shares) {
                    sum.iter_mut().zip(batch).for_each(|(s, b)| *s += b);
                }
                hard.x
            }
            None => {
                q_items.extend(std::iter::repeat_n(1.0, n));
                bytes_items.extend(std::iter::repeat_n(1.0, n));
                batch.images
            }
        };
        let logits = net.forward(x);
        let loss = ce.forward(logits.clone(), batch.labels.clone());
        loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
        let pred = logits.argmax(1).squeeze_dim::<1>(1);
        correct += pred.clone().equal(batch.labels).int().sum().into_scalar::<i64>();
        predictions.extend(pred.into_data().convert::<i64>().iter::<i64>());
    }
    let items = split.len.max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let eval = Evaluation {
        accuracy: correct as f64 / items as f64,
        loss: loss_sum / items as f64,
        q: mean(&q_items),
        bytes_fraction: mean(&bytes_items),
        q_percentiles: percentiles(&mut q_items),
        items: split.len,
        version_fractions: labels
            .into_iter()
            .zip(shares)
            .map(|((mask, versions), sums)| VersionFractions {
                mask,
                versions,
                fractions: sums.into_iter().map(|s| s / items as f64).collect(),
            })
            .collect(),
    };
    Ok((eval, predictions))
}

/// The 10th, 50th and 90th percentiles (nearest rank) of `values`.
pub fn percentiles(values: &mut [f64]) -> [f64; 3] {
    if values.is_empty() {
        return [f64::NAN; 3];
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    [at(0.1), at(0.5), at(0.9)]
}

/// The evaluation of `net` behind `mask` on `split` (see
/// [`evaluate_with_predictions`]).
pub fn evaluate(net: &Network, mask: Option<&Mask>, tau: f64, split: &TensorSplit, batch_size: usize) -> Result<Evaluation> {
    Ok(evaluate_with_predictions(net, mask, tau, split, batch_size)?.0)
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=10).map(f64::from).rev().collect();
        assert_eq!(percentiles(&mut v), [1.0, 5.0, 9.0]);
        assert_eq!(percentiles(&mut [0.3]), [0.3, 0.3, 0.3]);
    }
}
