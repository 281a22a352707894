//! SqueezeNet 1.1 as torchvision's `squeezenet1_1`, the network of the
//! paper's ship experiment (384×384 RGB, 2 classes, ImageNet-pretrained).
//!
//! - `features`: conv 3×3 stride 2 (no padding) 3 → 64, ReLU, max-pool 3×3
//!   stride 2, Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), max-pool,
//!   Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), max-pool,
//!   Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
//!   Fire(384, 64, 256, 256), Fire(512, 64, 256, 256);
//! - `classifier`: dropout 0.5, conv 1×1 512 → classes, ReLU, average over
//!   the map.
//!
//! The max-pools round up (`ceil_mode=True`): a last, partial window counts
//! when it starts inside the map. On 384×384 inputs the maps are 191 after
//! the first convolution, then 95, 47 and 23 after the pools. 1,235,496
//! parameters for ImageNet's 1000 classes, 723,522 for 2.
//!
//! `features` and `classifier` are lists like torchvision's `nn.Sequential`s,
//! so the exported tensor names are torchvision's (`features.0.weight`,
//! `features.3.squeeze.weight`, `features.3.expand3x3.bias`,
//! `classifier.1.weight`) and its `state_dict` loads as it is.
//!
//! # Pretrained weights
//!
//! [`SqueezeNet::load_pretrained`] reads torchvision's ImageNet weights from
//! a local file (nothing is ever downloaded), in the safetensors format. Make
//! one from torchvision with (see [`CONVERT_COMMAND`]):
//!
//! ```text
//! python -c 'from safetensors.torch import save_file; import torchvision; save_file(torchvision.models.squeezenet1_1(weights="IMAGENET1K_V1").state_dict(), "squeezenet1_1.safetensors")'
//! ```
//!
//! PyTorch's own `.pth` files are pickles, which this build cannot read
//! (Burn's PyTorch reader is behind a feature this crate does not enable);
//! they are rejected with that command in the message. After loading, the
//! network is adapted as the authors' ship code does: the classifier
//! convolution keeps the first `n_classes` entries of the pretrained bias
//! and gets a fresh N(0, 0.01) weight, and the last Fire module
//! (`features.12`) is re-initialised (Kaiming uniform weights, zero biases).

use std::path::Path;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::models::weights::{load_module_tensors, module_tensors};
use crate::error::{Error, Result};
use selmask_wire::artifact::F32Tensor;
use selmask_wire::artifact::safetensors::from_safetensors_bytes;
use crate::kernels::conv2d_module;

/// The command that writes torchvision's ImageNet weights of SqueezeNet 1.1
/// as a safetensors file `--pretrained` reads.
pub const CONVERT_COMMAND: &str = "python -c 'from safetensors.torch import save_file; import torchvision; \
     save_file(torchvision.models.squeezenet1_1(weights=\"IMAGENET1K_V1\").state_dict(), \"squeezenet1_1.safetensors\")'";

/// Index of the last Fire module in `features`, re-initialised after
/// loading pretrained weights.
const LAST_FIRE: usize = 12;

/// The smallest input side the network takes: [`feature_size`] is `None` below.
pub const MIN_SIZE: usize = 25;

/// Side of the last feature map for inputs of side `n` (23 for 384), or
/// `None` when the input is too small for the three 3×3 poolings.
pub fn feature_size(n: usize) -> Option<usize> {
    // conv 3×3, stride 2, no padding.
    let mut m = n.checked_sub(3)? / 2 + 1;
    for _ in 0..3 {
        if m < 3 {
            return None;
        }
        // ceil_mode: PyTorch drops a last window starting past the map,
        // which without padding never happens here.
        m = (m - 3).div_ceil(2) + 1;
    }
    Some(m)
}

/// Settings of [`SqueezeNet`].
#[derive(Config, Debug)]
pub struct SqueezeNetConfig {
    /// Input channels.
    #[config(default = 3)]
    pub channels: usize,
    /// Number of classes.
    #[config(default = 2)]
    pub n_classes: usize,
}

/// squeeze 1×1 → ReLU, then the channels of expand 1×1 → ReLU and
/// expand 3×3 (padding 1) → ReLU side by side.
#[derive(Module, Debug)]
pub struct Fire {
    squeeze: Conv2d,
    expand1x1: Conv2d,
    expand3x3: Conv2d,
}

/// One entry of `features` or `classifier`: what `nn.Sequential` holds.
/// The variant is not part of the tensor names (only the list index is).
#[derive(Module, Debug)]
pub enum Layer {
    /// A convolution (its ReLU is the next entry).
    Conv(Conv2d),
    /// ReLU.
    Relu(Relu),
    /// Max pooling 3×3, stride 2, rounding up.
    MaxPool(MaxPool2d),
    /// A Fire module.
    Fire(Fire),
    /// Dropout (active in training only).
    Dropout(Dropout),
    /// Average pooling to 1×1.
    AvgPool(AdaptiveAvgPool2d),
}

/// The network.
#[derive(Module, Debug)]
pub struct SqueezeNet {
    features: Vec<Layer>,
    classifier: Vec<Layer>,
}

/// A convolution initialised as torchvision's SqueezeNet: Kaiming uniform
/// weights (`init.kaiming_uniform_`, gain √2, fan in) and zero bias.
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, padding: usize, device: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_initializer(Initializer::KaimingUniform { gain: std::f64::consts::SQRT_2, fan_out_only: false })
        .init(device);
    conv.bias = Some(Initializer::Zeros.init([c_out], device));
    conv
}

/// torchvision's classifier convolution: weight N(0, 0.01), zero bias.
fn final_conv(n_classes: usize, device: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new([512, n_classes], [1, 1])
        .with_initializer(Initializer::Normal { mean: 0.0, std: 0.01 })
        .init(device);
    conv.bias = Some(Initializer::Zeros.init([n_classes], device));
    conv
}

impl Fire {
    fn new(c_in: usize, squeeze: usize, expand1x1: usize, expand3x3: usize, device: &Device) -> Self {
        Fire {
            squeeze: conv(c_in, squeeze, 1, 1, 0, device),
            expand1x1: conv(squeeze, expand1x1, 1, 1, 0, device),
            expand3x3: conv(squeeze, expand3x3, 3, 1, 1, device),
        }
    }

    /// # Shapes
    /// - input `[batch, c_in, h, w]`
    /// - output `[batch, expand1x1 + expand3x3, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = relu(conv2d_module(&self.squeeze, x)); // [b, squeeze, h, w]
        let e1 = relu(conv2d_module(&self.expand1x1, s.clone())); // [b, expand1x1, h, w]
        let e3 = relu(conv2d_module(&self.expand3x3, s)); // [b, expand3x3, h, w]
        Tensor::cat(vec![e1, e3], 1) // [b, expand1x1 + expand3x3, h, w]
    }
}

impl Layer {
    /// # Shapes
    /// - input `[batch, c, h, w]` → output `[batch, c', h', w']`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Conv(c) => conv2d_module(c, x),
            Layer::Relu(r) => r.forward(x),
            Layer::MaxPool(p) => p.forward(x),
            Layer::Fire(f) => f.forward(x),
            Layer::Dropout(d) => d.forward(x),
            Layer::AvgPool(p) => p.forward(x),
        }
    }
}

/// torchvision's pooling: 3×3, stride 2, no padding, `ceil_mode=True`.
fn max_pool() -> Layer {
    Layer::MaxPool(MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_ceil_mode(true).init())
}

impl SqueezeNetConfig {
    /// Builds the network with torchvision's initialisation (Kaiming
    /// uniform convolutions with zero bias; the classifier N(0, 0.01)).
    pub fn init(&self, device: &Device) -> SqueezeNet {
        let fire = |c_in, s, e1, e3| Layer::Fire(Fire::new(c_in, s, e1, e3, device));
        let features = vec![
            Layer::Conv(conv(self.channels, 64, 3, 2, 0, device)), // 0
            Layer::Relu(Relu::new()),                              // 1
            max_pool(),                                            // 2
            fire(64, 16, 64, 64),                                  // 3
            fire(128, 16, 64, 64),                                 // 4
            max_pool(),                                            // 5
            fire(128, 32, 128, 128),                               // 6
            fire(256, 32, 128, 128),                               // 7
            max_pool(),                                            // 8
            fire(256, 48, 192, 192),                               // 9
            fire(384, 48, 192, 192),                               // 10
            fire(384, 64, 256, 256),                               // 11
            fire(512, 64, 256, 256),                               // 12 (LAST_FIRE)
        ];
        let classifier = vec![
            Layer::Dropout(DropoutConfig::new(0.5).init()),
            Layer::Conv(final_conv(self.n_classes, device)),
            Layer::Relu(Relu::new()),
            Layer::AvgPool(AdaptiveAvgPool2dConfig::new([1, 1]).init()),
        ];
        SqueezeNet { features, classifier }
    }
}

impl SqueezeNet {
    /// # Shapes
    /// - input `[batch, channels, H, W]` (384×384 in the paper)
    /// - output `[batch, n_classes]` (logits, after a ReLU as torchvision)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        // 384×384 input: [b, 64, 191, 191] after the first convolution,
        // 95 / 47 / 23 after the pools, [b, 512, 23, 23] out of Fire 12.
        let x = self.features.iter().fold(x, |x, layer| layer.forward(x)); // [b, 512, h, w]
        let x = self.classifier.iter().fold(x, |x, layer| layer.forward(x)); // [b, n_classes, 1, 1]
        let [batch, classes, _, _] = x.dims();
        x.reshape([batch, classes]) // [b, n_classes]
    }

    /// Number of classes (rows of the classifier convolution).
    fn n_classes(&self) -> usize {
        match &self.classifier[1] {
            Layer::Conv(c) => c.weight.dims()[0],
            _ => unreachable!("classifier.1 is the classifier convolution"),
        }
    }

    /// The network with torchvision's ImageNet weights from the safetensors
    /// file `path`, adapted to this network's classes as the authors did
    /// (see the [module docs](self)). Errors name the file and, where one
    /// is at fault, the tensor.
    pub fn load_pretrained(self, path: &Path) -> Result<Self> {
        let pretrained = read_pretrained(path)?;
        let file = path.display().to_string();
        let n_classes = self.n_classes();
        // Fresh values for what is re-initialised: the last Fire module and
        // the classifier weight, initialised as torchvision does.
        let fresh = module_tensors(&self);
        let renewed = |name: &str| name.starts_with(&format!("features.{LAST_FIRE}.")) || name == "classifier.1.weight";
        let mut tensors = pretrained.clone();
        tensors.retain(|name, _| !renewed(name));
        for (name, t) in fresh.iter().filter(|(name, _)| renewed(name)) {
            tensors.insert(name.clone(), t.clone());
        }
        // The classifier bias: the first n_classes of ImageNet's 1000.
        let bias_name = "classifier.1.bias";
        let bad = |reason: String| Error::invalid(path, format!("tensor '{bias_name}'"), reason);
        let bias = pretrained.get(bias_name).ok_or_else(|| bad("missing".into()))?;
        if bias.shape.len() != 1 || bias.shape[0] < n_classes {
            return Err(bad(format!("shape {:?}, the network needs at least [{n_classes}]", bias.shape)));
        }
        tensors.insert(bias_name.into(), F32Tensor { shape: vec![n_classes], values: bias.values[..n_classes].to_vec() });
        load_module_tensors(self, &tensors, &file)
    }
}

/// The tensors of a pretrained-weights file, refusing PyTorch pickles with
/// the conversion command.
fn read_pretrained(path: &Path) -> Result<selmask_wire::artifact::TensorMap> {
    let pickle = || {
        Error::format(
            path,
            "pretrained weights",
            format!(
                "a PyTorch pickle (.pth/.pt), which selmask cannot read; convert it to safetensors with: {CONVERT_COMMAND}"
            ),
        )
    };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if matches!(ext.as_deref(), Some("pth" | "pt")) {
        return Err(pickle());
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // torch.save writes a zip archive (or, in old versions, a bare pickle).
    if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
        return Err(pickle());
    }
    Ok(from_safetensors_bytes(&path.display().to_string(), &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use selmask_wire::artifact::TensorMap;
    use selmask_wire::artifact::safetensors::to_safetensors_bytes;
    use crate::models::trainable_parameters;
    use burn::tensor::Distribution;
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;

    #[test]
    fn parameter_counts_are_torchvisions() {
        let device = Device::flex();
        assert_eq!(trainable_parameters(&SqueezeNetConfig::new().with_n_classes(1000).init(&device)), 1_235_496);
        assert_eq!(trainable_parameters(&SqueezeNetConfig::new().init(&device)), 723_522);
    }

    #[test]
    fn tensor_names_are_torchvisions() {
        let map = module_tensors(&SqueezeNetConfig::new().init(&Device::flex()));
        for name in [
            "features.0.weight",
            "features.0.bias",
            "features.3.squeeze.weight",
            "features.3.expand1x1.weight",
            "features.3.expand3x3.bias",
            "features.12.expand3x3.weight",
            "classifier.1.weight",
            "classifier.1.bias",
        ] {
            assert!(map.contains_key(name), "{name} not in {:?}", map.keys().collect::<Vec<_>>());
        }
        assert_eq!(map.len(), 2 + 8 * 6 + 2);
        assert_eq!(map["classifier.1.weight"].shape, [2, 512, 1, 1]);
    }

    #[test]
    fn map_sizes_and_output_shape_on_ships_inputs() {
        let device = Device::flex();
        let net = SqueezeNetConfig::new().init(&device);
        let x = Tensor::random([1, 3, 384, 384], Distribution::Default, &device);
        let mut sizes = Vec::new();
        let mut y = x.clone();
        for layer in &net.features {
            y = layer.forward(y);
            if matches!(layer, Layer::Conv(_) | Layer::MaxPool(_)) {
                sizes.push(y.dims()[2]);
            }
        }
        assert_eq!(sizes, [191, 95, 47, 23]);
        assert_eq!(feature_size(384), Some(23));
        assert_eq!((feature_size(MIN_SIZE), feature_size(MIN_SIZE - 1)), (Some(1), None));
        assert_eq!(y.dims(), [1, 512, 23, 23]);
        assert_eq!(net.forward(x).dims(), [1, 2]);
    }

    #[test]
    fn ceil_mode_pooling_keeps_the_partial_window() {
        let device = Device::flex();
        // -(4r + c) on a 4×4 map: floor mode would give one 3×3 window; ceil
        // mode adds windows over rows/columns 2..4. Negative values show
        // that the part outside the map is ignored (not padded with 0).
        let values: Vec<f32> = (0..16).map(|v| -(v as f32)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 1, 4, 4]), &device);
        let Layer::MaxPool(pool) = max_pool() else { unreachable!() };
        let y = pool.forward(x.clone());
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        // The maximum of each window is its smallest index: (0,0), (0,2), (2,0), (2,2).
        assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), [0.0, -2.0, -8.0, -10.0]);
        let floor = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        assert_eq!(floor.dims(), [1, 1, 1, 1]);
    }

    /// A torchvision-named 1000-class file from a random network.
    fn imagenet_file(dir: &Path) -> (std::path::PathBuf, TensorMap) {
        let device = Device::flex();
        let map = module_tensors(&SqueezeNetConfig::new().with_n_classes(1000).init(&device));
        let path = dir.join("squeezenet1_1.safetensors");
        std::fs::write(&path, to_safetensors_bytes("squeezenet1_1.safetensors", &map).unwrap()).unwrap();
        (path, map)
    }

    #[test]
    fn pretrained_import_keeps_features_and_adapts_the_classifier() {
        let dir = tempfile::tempdir().unwrap();
        let (path, imagenet) = imagenet_file(dir.path());
        let device = Device::flex();
        let fresh = SqueezeNetConfig::new().init(&device);
        let fresh_tensors = module_tensors(&fresh);
        let net = fresh.load_pretrained(&path).unwrap();
        let got = module_tensors(&net);
        for name in ["features.0.weight", "features.3.squeeze.weight", "features.11.expand3x3.bias"] {
            assert_eq!(got[name], imagenet[name], "{name}");
        }
        // The last Fire module and the classifier weight are re-initialised.
        for name in ["features.12.squeeze.weight", "features.12.expand3x3.bias", "classifier.1.weight"] {
            assert_eq!(got[name], fresh_tensors[name], "{name}");
        }
        assert!(got["features.12.expand1x1.bias"].values.iter().all(|&v| v == 0.0));
        let w = &got["classifier.1.weight"].values;
        let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        assert!((0.007..0.013).contains(&std), "classifier weight std {std}");
        // The bias is the first two of the thousand.
        assert_eq!(got["classifier.1.bias"].values, imagenet["classifier.1.bias"].values[..2]);
    }

    #[test]
    fn pretrained_errors_name_the_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let (path, imagenet) = imagenet_file(dir.path());
        let device = Device::flex();
        let load = |p: &Path| SqueezeNetConfig::new().init(&device).load_pretrained(p).unwrap_err().to_string();

        let missing = dir.path().join("none.safetensors");
        let err = load(&missing);
        assert!(err.contains("none.safetensors") && err.contains("No such file"), "{err}");

        for name in ["model.pth", "model.pt"] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"PK\x03\x04zip").unwrap();
            let err = load(&p);
            assert!(err.contains(name) && err.contains("pickle") && err.contains("save_file"), "{err}");
        }
        // A zip under another name is recognised by its content.
        let p = dir.path().join("weights.bin");
        std::fs::write(&p, b"PK\x03\x04zip").unwrap();
        assert!(load(&p).contains("pickle"));

        let p = dir.path().join("garbage.safetensors");
        std::fs::write(&p, b"not a safetensors file").unwrap();
        let err = load(&p);
        assert!(err.contains("garbage.safetensors") && err.contains("malformed safetensors"), "{err}");

        let write = |name: &str, map: &TensorMap| {
            let p = dir.path().join(name);
            std::fs::write(&p, to_safetensors_bytes(name, map).unwrap()).unwrap();
            p
        };
        let mut m = imagenet.clone();
        m.remove("features.4.expand1x1.weight");
        let err = load(&write("missing.safetensors", &m));
        assert!(err.contains("missing.safetensors") && err.contains("features.4.expand1x1.weight") && err.contains("missing"), "{err}");

        let mut m = imagenet.clone();
        m.insert("features.0.weight".into(), F32Tensor { shape: vec![96, 3, 7, 7], values: vec![0.0; 96 * 3 * 49] });
        let err = load(&write("shape.safetensors", &m));
        assert!(err.contains("shape.safetensors") && err.contains("features.0.weight") && err.contains("[96, 3, 7, 7]"), "{err}");

        let mut m = imagenet;
        m.remove("classifier.1.bias");
        let err = load(&write("nobias.safetensors", &m));
        assert!(err.contains("nobias.safetensors") && err.contains("classifier.1.bias") && err.contains("missing"), "{err}");

        let _ = path;
    }
}
