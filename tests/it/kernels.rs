//! The fast kernels give Burn's results: outputs and gradients of the
//! channels-first convolution and of the fused conv → ReLU → max-pool block
//! against Burn's own operations on the same backend.

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use selmask::kernels::{self, ConvSpec};
use selmask::models::NetworkConfig;

use crate::fixtures::device;

fn close(a: Tensor<4>, b: Tensor<4>, what: &str) {
    let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
    let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{what} [{i}]: {x} vs {y}");
    }
}

fn close_any<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
    let n = a.dims().iter().product::<usize>();
    close(a.reshape([1, 1, 1, n]), b.reshape([1, 1, 1, n]), what);
}

/// Random inputs of a convolution, tracked for gradients.
fn inputs(device: &Device, x: [usize; 4], w: [usize; 4]) -> (Tensor<4>, Tensor<4>, Tensor<1>) {
    let d = Distribution::Normal(0.0, 1.0);
    (
        Tensor::random(x, d, device).require_grad(),
        Tensor::random(w, d, device).require_grad(),
        Tensor::random([w[0]], d, device).require_grad(),
    )
}

#[test]
fn conv2d_matches_burn_with_gradients() {
    let device = device();
    device.seed(11);
    for (x_shape, w_shape, spec) in [
        ([3, 2, 9, 8], [4, 2, 3, 3], ConvSpec { stride: [1, 1], padding: [1, 1] }),
        ([2, 3, 11, 11], [5, 3, 3, 3], ConvSpec { stride: [2, 2], padding: [1, 1] }),
        ([2, 1, 28, 28], [6, 1, 5, 5], ConvSpec { stride: [1, 1], padding: [0, 0] }),
    ] {
        let (x, w, b) = inputs(&device, x_shape, w_shape);
        let ours = kernels::conv2d(x.clone(), w.clone(), b.clone(), spec);
        let theirs = conv2d(x.clone(), w.clone(), Some(b.clone()), ConvOptions::new(spec.stride, spec.padding, [1, 1], 1));
        let r = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours.clone() * r.clone()).sum().backward();
        let g_theirs = (theirs.clone() * r).sum().backward();
        close(ours, theirs, "output");
        close(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap(), "x grad");
        close(w.grad(&g_ours).unwrap(), w.grad(&g_theirs).unwrap(), "w grad");
        close_any(b.grad(&g_ours).unwrap(), b.grad(&g_theirs).unwrap(), "b grad");
    }
}

#[test]
fn fused_conv_relu_pool_matches_burn_with_gradients() {
    let device = device();
    device.seed(12);
    for (x_shape, w_shape) in [([3, 2, 12, 12], [5, 2, 5, 5]), ([2, 1, 28, 28], [20, 1, 5, 5]), ([2, 3, 9, 9], [4, 3, 3, 3])] {
        let (x, w, b) = inputs(&device, x_shape, w_shape);
        let spec = ConvSpec { stride: [1, 1], padding: [0, 0] };
        let x_nhwc = x.clone().permute([0, 2, 3, 1]);
        let ours = kernels::conv_relu_pool(x_nhwc, w.clone(), b.clone(), spec, 2).permute([0, 3, 1, 2]);
        let conv = conv2d(x.clone(), w.clone(), Some(b.clone()), ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        let theirs = max_pool2d(relu(conv), MaxPoolOptions::new([2, 2]));
        let r = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours.clone() * r.clone()).sum().backward();
        let g_theirs = (theirs.clone() * r).sum().backward();
        close(ours, theirs, "output");
        close(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap(), "x grad");
        close(w.grad(&g_ours).unwrap(), w.grad(&g_theirs).unwrap(), "w grad");
        close_any(b.grad(&g_ours).unwrap(), b.grad(&g_theirs).unwrap(), "b grad");
    }
}

#[test]
fn kernels_run_without_autodiff_too() {
    let device = Device::flex();
    let x = Tensor::<4>::ones([1, 6, 6, 1], &device);
    let w = Tensor::<4>::ones([2, 1, 3, 3], &device);
    let b = Tensor::<1>::zeros([2], &device);
    let y = kernels::conv_relu_pool(x, w, b, ConvSpec { stride: [1, 1], padding: [0, 0] }, 2);
    assert_eq!(y.dims(), [1, 2, 2, 2]);
    assert!(y.into_data().try_to_vec::<f32>().unwrap().iter().all(|&v| v == 9.0));
}

#[test]
fn lenet5_has_the_papers_shape_and_parameter_count() {
    let device = device();
    let net = NetworkConfig::by_name("lenet5", [1, 28, 28], 10).unwrap().init(&device);
    // conv1 20*25+20, conv2 50*500+50, fc1 800*500+500, fc2 500*10+10.
    assert_eq!(burn::module::Module::num_params(&net), 520 + 25_050 + 400_500 + 5_010);
    assert_eq!(burn::module::Module::num_params(&net), 431_080);
    let out = net.forward(Tensor::zeros([3, 1, 28, 28], &device));
    assert_eq!(out.dims(), [3, 10]);
    let msg = NetworkConfig::by_name("lenet5", [3, 32, 32], 10).unwrap_err().to_string();
    assert!(msg.contains("28x28"), "{msg}");
}

#[test]
fn conv2d_module_matches_burn_on_the_paper_networks_convolutions() {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = device();
    device.seed(13);
    // ResNet20's bias-free 3x3 convolutions (stride 2 on an odd map, as
    // Galaxy10's), the all-conv net's valid strided and 1x1 ones, and
    // SqueezeNet's padded 3x3 expand convolution.
    for (x_shape, channels, kernel, stride, padding, bias) in [
        ([2, 3, 9, 9], [3, 4], 3, 1, 1, false),
        ([2, 4, 11, 11], [4, 6], 3, 2, 1, false),
        ([2, 5, 10, 10], [5, 3], 3, 2, 0, true),
        ([2, 5, 6, 6], [5, 7], 1, 1, 0, true),
        ([2, 4, 7, 7], [4, 3], 3, 1, 1, true),
    ] {
        let conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
            .with_bias(bias)
            .init(&device);
        assert!(kernels::spec_of(&conv).is_some());
        let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
        let ours = kernels::conv2d_module(&conv, x.clone());
        let theirs = conv.forward(x.clone());
        let r = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours.clone() * r.clone()).sum().backward();
        let g_theirs = (theirs.clone() * r).sum().backward();
        close(ours, theirs, "output");
        close(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap(), "x grad");
        close(conv.weight.grad(&g_ours).unwrap(), conv.weight.grad(&g_theirs).unwrap(), "w grad");
        if let Some(b) = &conv.bias {
            close_any(b.grad(&g_ours).unwrap(), b.grad(&g_theirs).unwrap(), "b grad");
        }
    }
}

#[test]
fn the_paper_networks_train_on_their_input_shapes() {
    use burn::nn::loss::CrossEntropyLossConfig;
    let device = device();
    device.seed(14);
    // One gradient step's worth of the networks' own layers: every
    // parameter gets a finite gradient (the kernels' backward passes,
    // reflection padding, option-A shortcuts, ceil-mode pooling).
    for (name, shape, classes) in [("resnet20-s2", [3, 69, 69], 10), ("allconv", [36, 35, 35], 13), ("squeezenet1_1", [3, 48, 48], 2)] {
        let net = NetworkConfig::by_name(name, shape, classes).unwrap().build(&device).unwrap();
        let [c, h, w] = shape;
        let x = Tensor::<4>::random([2, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1, Int>::from_data([0, 1], &device);
        let loss = CrossEntropyLossConfig::new().init(&device).forward(net.forward(x), y);
        let mut grads = loss.backward();
        let params = burn::optim::GradientsParams::from_module(&mut grads, &net);
        let expected = selmask::models::weights::module_tensors(&net).keys().filter(|k| !k.contains("running_")).count();
        assert_eq!(params.len(), expected, "{name}: every parameter has a gradient");
    }
}
