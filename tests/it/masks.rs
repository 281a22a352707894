//! The static mask: straight-through gradient, hard masks, upscaling.

use burn::module::Param;
use burn::prelude::*;
use selmask_wire::granularity::Granularity;
use selmask::masks::static_mask::StaticMaskConfig;

use crate::fixtures::device;

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn config(shape: [usize; 3], granularity: &str, upscaling: bool) -> StaticMaskConfig {
    StaticMaskConfig {
        input_shape: shape,
        granularity: granularity.parse::<Granularity>().unwrap(),
        init_mean: 3.0,
        init_std: 0.01,
        input_drop_upscaling: upscaling,
    }
}

#[test]
fn straight_through_gradient_matches_the_analytic_value() {
    // Two cells; loss = sum(c * masked x) + lambda * Q.
    // Forward sees the hard mask [1, 0]; d loss / d logit_i is
    // (x_i c_i + lambda / 2) * s_i (1 - s_i) / tau (sigmoid's gradient).
    let device = device();
    let (logits, x, c, lambda, tau) = ([0.7, -1.2], [1.5, -2.0], [0.3, 0.8], 0.6, 2.0);
    let mut mask = config([1, 1, 2], "subpixel", false).init(&device).unwrap();
    mask.logits = Param::from_tensor(Tensor::<3>::from_floats([[logits]], &device));
    let xt = Tensor::<4>::from_floats([[[x]]], &device);
    let ct = Tensor::<4>::from_floats([[[c]]], &device);
    let out = mask.forward(xt, tau);
    let masked: Vec<f32> = out.x.clone().into_data().try_to_vec().unwrap();
    assert_eq!(masked, vec![1.5, 0.0]); // hard forward: cell 1 dropped
    let loss = (out.x * ct).sum() + out.q.mul_scalar(lambda);
    let loss_value: f32 = loss.clone().into_scalar();
    assert!((loss_value - (0.45 + 0.3)).abs() < 1e-6);
    let grads = loss.backward();
    let grad: Vec<f32> = mask.logits.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    for i in 0..2 {
        let s = sigmoid(logits[i] / tau);
        let expected = (x[i] * c[i] + lambda / 2.0) * s * (1.0 - s) / tau;
        assert!((grad[i] as f64 - expected).abs() < 1e-6, "cell {i}: {} vs {expected}", grad[i]);
    }
}

#[test]
fn hard_mask_is_exactly_binary_and_upsampled() {
    let device = device();
    // 2x2 grid on a 1x5x5 input: the uneven nearest rule, through the gather path.
    let mut mask = config([1, 5, 5], "quadrant", false).init(&device).unwrap();
    mask.logits = Param::from_tensor(Tensor::<3>::from_floats([[[2.0, -1.0], [-0.5, 0.25]]], &device));
    let hard = mask.hard_mask(1.0);
    assert_eq!(hard.values, vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(hard.q, 0.5);
    let x = Tensor::<4>::ones([2, 1, 5, 5], &device);
    let y: Vec<f32> = mask.apply_hard(x.clone(), &hard).into_data().try_to_vec().unwrap();
    // Row 0: columns 0-2 in cell 0 (kept), 3-4 in cell 1 (dropped).
    assert_eq!(y[..5], [1.0, 1.0, 1.0, 0.0, 0.0]);
    // Row 4: cells 2 and 3.
    assert_eq!(y[20..25], [0.0, 0.0, 0.0, 1.0, 1.0]);
    // Training forward sees the same values (straight-through is hard forward).
    let t: Vec<f32> = mask.forward(x, 1.0).x.into_data().try_to_vec().unwrap();
    for (a, b) in t.iter().zip(&y) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn input_drop_upscaling_divides_by_the_kept_fraction() {
    let device = device();
    let mut mask = config([1, 1, 4], "subpixel", true).init(&device).unwrap();
    mask.logits = Param::from_tensor(Tensor::<3>::from_floats([[[1.0, 1.0, 1.0, -1.0]]], &device));
    let x = Tensor::<4>::ones([1, 1, 1, 4], &device);
    let y: Vec<f32> = mask.forward(x.clone(), 1.0).x.into_data().try_to_vec().unwrap();
    let scale = 1.0 / (0.75 + 1e-7 / 4.0);
    for (i, v) in y.iter().enumerate() {
        let expected = if i < 3 { scale as f32 } else { 0.0 };
        assert!((v - expected).abs() < 1e-5, "{i}: {v}");
    }
    let hard = mask.hard_mask(1.0);
    let z: Vec<f32> = mask.apply_hard(x, &hard).into_data().try_to_vec().unwrap();
    assert!((z[0] - scale as f32).abs() < 1e-5 && z[3] == 0.0);
}

#[test]
fn initial_mask_selects_everything() {
    let mask = config([1, 28, 28], "pixel", false).init(&device()).unwrap();
    let hard = mask.hard_mask(1.0);
    assert_eq!(hard.q, 1.0);
    assert_eq!(hard.values.len(), 784);
}
