//! The networks against PyTorch: weights written by PyTorch and torchvision
//! (`tests/golden/make_golden.py`, real `state_dict` names and layouts)
//! load into our networks, which then give PyTorch's logits on PyTorch's
//! input batch, in eval mode and (batch norm on batch statistics) in train
//! mode; what we export is PyTorch's layout, value by value.

use std::io::Read;
use std::path::PathBuf;

use burn::prelude::*;
use selmask::models::weights::{load_module_tensors, module_tensors};
use selmask_wire::artifact::safetensors::from_safetensors_bytes;
use selmask_wire::artifact::{F32Tensor, TensorMap};
use selmask::models::{Network, NetworkConfig};

fn golden(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file)
}

/// PyTorch's `state_dict` of `net` (as `save_file` wrote it, gzipped).
fn pytorch_weights(net: &str) -> TensorMap {
    let path = golden(&format!("{net}.weights.safetensors.gz"));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut bytes).unwrap();
    from_safetensors_bytes(&path.display().to_string(), &bytes).unwrap()
}

/// The input batch and PyTorch's outputs for `net`.
fn pytorch_io(net: &str) -> TensorMap {
    let path = golden(&format!("{net}.io.safetensors"));
    from_safetensors_bytes(&path.display().to_string(), &std::fs::read(&path).unwrap()).unwrap()
}

fn tensor4(t: &F32Tensor, device: &Device) -> Tensor<4> {
    let shape: [usize; 4] = t.shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(t.values.clone(), shape), device)
}

fn assert_close(got: &[f32], want: &F32Tensor, what: &str) {
    assert_eq!(got.len(), want.values.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(&want.values).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}[{i}]: ours {g}, PyTorch {w}\nours {got:?}\nPyTorch {:?}", want.values);
    }
}

/// `name` built for `shape`, loaded with PyTorch's weights on `device`.
fn load(name: &str, shape: [usize; 3], classes: usize, device: &Device) -> Network {
    let cfg = NetworkConfig::by_name(name, shape, classes).unwrap();
    load_module_tensors(cfg.init(device), &pytorch_weights(name), &format!("{name}.weights.safetensors")).unwrap()
}

/// Eval-mode logits of `name` on the golden batch equal PyTorch's.
fn eval_logits_match(name: &str, shape: [usize; 3], classes: usize) {
    let device = Device::flex();
    let net = load(name, shape, classes, &device);
    let io = pytorch_io(name);
    assert_eq!(io["x"].shape[1..], shape);
    let y: Vec<f32> = net.forward(tensor4(&io["x"], &device)).into_data().try_to_vec().unwrap();
    assert_close(&y, &io["logits_eval"], &format!("{name} eval logits"));
    // Not a degenerate check: the two items and the classes differ.
    let w = &io["logits_eval"].values;
    assert!(w[..classes] != w[classes..] && w.iter().any(|&v| v != w[0]), "{w:?}");
}

#[test]
fn lenet5_with_pytorch_weights_gives_pytorchs_logits() {
    eval_logits_match("lenet5", [1, 28, 28], 10);
}

#[test]
fn resnet20_with_akamasters_weights_gives_pytorchs_logits_in_eval_mode() {
    eval_logits_match("resnet20", [3, 32, 32], 10);
}

#[test]
fn allconv_with_pytorch_weights_gives_pytorchs_logits() {
    eval_logits_match("allconv", [4, 12, 12], 13);
}

#[test]
fn squeezenet_with_torchvisions_weights_gives_pytorchs_logits_through_ceil_mode_pools() {
    eval_logits_match("squeezenet1_1", [3, 35, 35], 2);
}

#[test]
fn resnet20_in_train_mode_normalises_with_batch_statistics_and_updates_running_ones_as_pytorch() {
    let device = Device::flex().autodiff();
    let net = load("resnet20", [3, 32, 32], 10, &device);
    let io = pytorch_io("resnet20");
    let y: Vec<f32> = net.forward(tensor4(&io["x"], &device)).inner().into_data().try_to_vec().unwrap();
    assert_close(&y, &io["logits_train"], "resnet20 train logits");
    let after = module_tensors(&net);
    let mut n = 0;
    for (name, want) in io.iter().filter_map(|(k, v)| k.strip_prefix("after_train.").map(|k| (k, v))) {
        assert_close(&after[name].values, want, name);
        n += 1;
    }
    assert_eq!(n, 2 * 19, "running mean and variance of 19 batch norms");
}

#[test]
fn exported_weights_are_pytorchs_layout_value_by_value() {
    let device = Device::flex();
    for (name, shape, classes) in [("lenet5", [1, 28, 28], 10), ("resnet20", [3, 32, 32], 10), ("squeezenet1_1", [3, 35, 35], 2)] {
        let torch = pytorch_weights(name);
        let exported = module_tensors(&load(name, shape, classes, &device));
        assert_eq!(exported.keys().collect::<Vec<_>>(), torch.keys().collect::<Vec<_>>(), "{name}");
        for (k, t) in &torch {
            assert_eq!(&exported[k], t, "{name}: {k}");
        }
    }
    // One value by index, in PyTorch's [out, in]: fc1.weight[o][i] is the
    // weight from input i (channel-first flattening) to unit o.
    let torch = pytorch_weights("lenet5");
    let exported = module_tensors(&load("lenet5", [1, 28, 28], 10, &device));
    let (o, i) = (3, 701);
    assert_eq!(exported["fc1.weight"].shape, [500, 800]);
    assert_eq!(exported["fc1.weight"].values[o * 800 + i], torch["fc1.weight"].values[o * 800 + i]);
    // And that value acts as the weight from input i to unit o: LeNet5's
    // fc1 sees the flattened feature map, so probe the linear layer alone
    // through the MLP, whose fc1 is the same kind of layer.
    let mlp_cfg = NetworkConfig::Mlp { inputs: 6, n_classes: 2, hidden: 3 };
    let mut map = module_tensors(&mlp_cfg.init(&device));
    let w: Vec<f32> = (0..18).map(|v| v as f32).collect(); // PyTorch [3 out, 6 in]
    map.insert("fc1.weight".into(), F32Tensor { shape: vec![3, 6], values: w });
    map.insert("fc1.bias".into(), F32Tensor { shape: vec![3], values: vec![0.0; 3] });
    // fc2 = identity on the first two hidden units.
    map.insert("fc2.weight".into(), F32Tensor { shape: vec![2, 3], values: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0] });
    map.insert("fc2.bias".into(), F32Tensor { shape: vec![2], values: vec![0.0; 2] });
    let mlp = load_module_tensors(mlp_cfg.init(&device), &map, "mlp").unwrap();
    // Input one-hot at i = 4: hidden unit o gets W[o][4] = 6 o + 4.
    let mut x = vec![0.0f32; 6];
    x[4] = 1.0;
    let y: Vec<f32> = mlp.forward(Tensor::from_data(TensorData::new(x, [1, 6, 1, 1]), &device)).into_data().try_to_vec().unwrap();
    assert_eq!(y, [4.0, 10.0]);
    assert_eq!(module_tensors(&mlp)["fc1.weight"], map["fc1.weight"]);
}
