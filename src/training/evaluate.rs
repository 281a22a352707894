//! Evaluation of a network behind a mask, exactly as it will be deployed.
//!
//! The mask is the hard 0/1 mask (no straight-through arithmetic), so the
//! accuracy reported here is what a client sees on data sent by a server.

use burn::nn::loss::CrossEntropyLossConfig;

use crate::data::batch::TensorSplit;
use crate::masks::static_mask::StaticMask;
use crate::models::Network;

/// Results of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Q of the hard mask (1 without a mask).
    pub q: f64,
    /// Fraction of input values the hard mask sends (1 without a mask).
    pub bytes_fraction: f64,
    /// Items evaluated.
    pub items: usize,
}

/// Predicted classes and the evaluation of `net` behind `mask` on `split`.
///
/// `net` and `mask` should be the non-autodiff copies (`Module::valid`).
pub fn evaluate_with_predictions(
    net: &Network,
    mask: Option<&StaticMask>,
    tau: f64,
    split: &TensorSplit,
    batch_size: usize,
) -> (Evaluation, Vec<i64>) {
    let device = split.images.device();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let hard = mask.map(|m| m.hard_mask(tau));
    let (q, bytes_fraction) = match (mask, &hard) {
        (Some(m), Some(h)) => (h.q, m.layout().value_fraction(&h.values)),
        _ => (1.0, 1.0),
    };
    let mut correct = 0i64;
    let mut loss_sum = 0.0f64;
    let mut predictions = Vec::with_capacity(split.len);
    for batch in split.ordered(batch_size) {
        let n = batch.labels.dims()[0];
        let x = match (mask, &hard) {
            (Some(m), Some(h)) => m.apply_hard(batch.images, h),
            _ => batch.images,
        };
        let logits = net.forward(x);
        let loss = ce.forward(logits.clone(), batch.labels.clone());
        loss_sum += loss.into_scalar::<f32>() as f64 * n as f64;
        let pred = logits.argmax(1).squeeze_dim::<1>(1);
        correct += pred.clone().equal(batch.labels).int().sum().into_scalar::<i64>();
        predictions.extend(pred.into_data().convert::<i64>().iter::<i64>());
    }
    let items = split.len.max(1);
    let eval = Evaluation {
        accuracy: correct as f64 / items as f64,
        loss: loss_sum / items as f64,
        q,
        bytes_fraction,
        items: split.len,
    };
    (eval, predictions)
}

/// The evaluation of `net` behind `mask` on `split` (see
/// [`evaluate_with_predictions`]).
pub fn evaluate(net: &Network, mask: Option<&StaticMask>, tau: f64, split: &TensorSplit, batch_size: usize) -> Evaluation {
    evaluate_with_predictions(net, mask, tau, split, batch_size).0
}
