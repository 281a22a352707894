//! Prediction networks, behind one [`Network`] type.
//!
//! The paper's network per dataset ([`NetworkConfig::for_dataset`]):
//! LeNet5 for MNIST and Fashion-MNIST, ResNet20 for CIFAR-10 and SVHN,
//! ResNet20 with a strided first stage for Galaxy10, the all-convolutional
//! net for the remote-sensing data and SqueezeNet 1.1 for the ships.

pub mod allconv;
pub mod lenet5;
pub mod mlp;
pub mod resnet;
pub mod squeezenet;
pub mod weights;

use std::path::PathBuf;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::error::{Error, Result};
use allconv::{AllConv, AllConvConfig};
use lenet5::{LeNet5, LeNet5Config};
use mlp::{Mlp, MlpConfig};
use resnet::{ResNet20, ResNet20Config};
use squeezenet::{SqueezeNet, SqueezeNetConfig};

/// Every name [`NetworkConfig::by_name`] knows, for messages and help.
pub const NETWORK_NAMES: [&str; 6] = ["lenet5", "mlp", "resnet20", "resnet20-s2", "allconv", "squeezenet1_1"];

fn one() -> usize {
    1
}

/// Which network, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkConfig {
    /// LeNet5 (MNIST-shaped inputs).
    Lenet5 { channels: usize, n_classes: usize },
    /// A one-hidden-layer perceptron.
    Mlp { inputs: usize, n_classes: usize, hidden: usize },
    /// ResNet20 (CIFAR-10, SVHN; Galaxy10 with `first_stride` 2).
    Resnet20 {
        channels: usize,
        n_classes: usize,
        /// Stride of stage 1's first block (see [`ResNet20Config::first_stride`]).
        #[serde(default = "one")]
        first_stride: usize,
    },
    /// The all-convolutional net of the remote-sensing experiment.
    #[serde(rename = "allconv")]
    AllConv { channels: usize, n_classes: usize },
    /// SqueezeNet 1.1 (ships), optionally starting from torchvision's
    /// ImageNet weights in a local safetensors file.
    #[serde(rename = "squeezenet1_1")]
    SqueezeNet11 {
        channels: usize,
        n_classes: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pretrained: Option<PathBuf>,
    },
}

/// A prediction network.
#[derive(Module, Debug)]
pub enum Network {
    /// See [`LeNet5`].
    Lenet5(LeNet5),
    /// See [`Mlp`].
    Mlp(Mlp),
    /// See [`ResNet20`].
    Resnet20(ResNet20),
    /// See [`AllConv`].
    AllConv(AllConv),
    /// See [`SqueezeNet`].
    SqueezeNet11(SqueezeNet),
}

impl NetworkConfig {
    /// The network named `name` (one of [`NETWORK_NAMES`]) for inputs of
    /// `shape` with `n_classes` classes.
    pub fn by_name(name: &str, shape: [usize; 3], n_classes: usize) -> Result<Self> {
        let [c, h, w] = shape;
        let too_small = |need: &str| Error::config("network", name, format!("{name} needs {need}, the dataset has {h}x{w}"));
        match name {
            "lenet5" => {
                if h != 28 || w != 28 {
                    return Err(too_small("28x28 inputs"));
                }
                Ok(NetworkConfig::Lenet5 { channels: c, n_classes })
            }
            "mlp" => Ok(NetworkConfig::Mlp { inputs: c * h * w, n_classes, hidden: 128 }),
            "resnet20" | "resnet20-s2" => {
                let first_stride = if name == "resnet20" { 1 } else { 2 };
                Ok(NetworkConfig::Resnet20 { channels: c, n_classes, first_stride })
            }
            "allconv" => {
                // Reflection padding needs maps of at least 2x2 after each
                // strided convolution.
                if h < 3 || w < 3 {
                    return Err(too_small("inputs of at least 3x3"));
                }
                Ok(NetworkConfig::AllConv { channels: c, n_classes })
            }
            "squeezenet1_1" => {
                if squeezenet::feature_size(h).is_none() || squeezenet::feature_size(w).is_none() {
                    return Err(too_small(&format!("inputs of at least {0}x{0}", squeezenet::MIN_SIZE)));
                }
                Ok(NetworkConfig::SqueezeNet11 { channels: c, n_classes, pretrained: None })
            }
            _ => Err(Error::config("network", name, format!("known networks: {}", NETWORK_NAMES.join(", ")))),
        }
    }

    /// The paper's network for `dataset` (inputs of `shape`, `n_classes`
    /// classes): lenet5 for mnist and fashion_mnist, resnet20 for cifar10
    /// and svhn, resnet20-s2 for galaxy10, allconv for remote and
    /// squeezenet1_1 for ships. Synthetic data get lenet5 when they are
    /// 28x28 (the default synthetic set), else mlp.
    pub fn for_dataset(dataset: DatasetName, shape: [usize; 3], n_classes: usize) -> Result<Self> {
        let name = match dataset {
            DatasetName::Mnist | DatasetName::FashionMnist => "lenet5",
            DatasetName::Synthetic if shape[1..] == [28, 28] => "lenet5",
            DatasetName::Synthetic => "mlp",
            DatasetName::Cifar10 | DatasetName::Svhn => "resnet20",
            DatasetName::Galaxy10 => "resnet20-s2",
            DatasetName::Remote => "allconv",
            DatasetName::Ships => "squeezenet1_1",
        };
        Self::by_name(name, shape, n_classes)
    }

    /// This network starting from the pretrained weights in `path` (none
    /// when `None`). Only squeezenet1_1 has pretrained weights; the file
    /// must exist (it is read by [`NetworkConfig::build`]).
    pub fn with_pretrained(self, path: Option<PathBuf>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(self);
        };
        match self {
            NetworkConfig::SqueezeNet11 { channels, n_classes, .. } => {
                if !path.is_file() {
                    return Err(Error::config("pretrained", path.display(), "no such file"));
                }
                Ok(NetworkConfig::SqueezeNet11 { channels, n_classes, pretrained: Some(path) })
            }
            other => Err(Error::config(
                "pretrained",
                path.display(),
                format!("only squeezenet1_1 has pretrained weights, the network is {}", other.name()),
            )),
        }
    }

    /// The file of pretrained weights this network starts from, if any.
    pub fn pretrained(&self) -> Option<&std::path::Path> {
        match self {
            NetworkConfig::SqueezeNet11 { pretrained, .. } => pretrained.as_deref(),
            _ => None,
        }
    }

    /// The same network without its pretrained-weights file: what two
    /// configurations must share for weights to move between them.
    pub fn architecture(&self) -> NetworkConfig {
        match self {
            NetworkConfig::SqueezeNet11 { channels, n_classes, .. } => {
                NetworkConfig::SqueezeNet11 { channels: *channels, n_classes: *n_classes, pretrained: None }
            }
            other => other.clone(),
        }
    }

    /// Short name, as accepted by [`NetworkConfig::by_name`].
    pub fn name(&self) -> &'static str {
        match self {
            NetworkConfig::Lenet5 { .. } => "lenet5",
            NetworkConfig::Mlp { .. } => "mlp",
            NetworkConfig::Resnet20 { first_stride: 1, .. } => "resnet20",
            NetworkConfig::Resnet20 { .. } => "resnet20-s2",
            NetworkConfig::AllConv { .. } => "allconv",
            NetworkConfig::SqueezeNet11 { .. } => "squeezenet1_1",
        }
    }

    /// Builds the network on `device`, randomly initialised (pretrained
    /// weights are not read: see [`NetworkConfig::build`]).
    pub fn init(&self, device: &Device) -> Network {
        match *self {
            NetworkConfig::Lenet5 { channels, n_classes } => {
                Network::Lenet5(LeNet5Config::new().with_channels(channels).with_n_classes(n_classes).init(device))
            }
            NetworkConfig::Mlp { inputs, n_classes, hidden } => {
                Network::Mlp(MlpConfig::new(inputs, n_classes).with_hidden(hidden).init(device))
            }
            NetworkConfig::Resnet20 { channels, n_classes, first_stride } => Network::Resnet20(
                ResNet20Config::new()
                    .with_channels(channels)
                    .with_n_classes(n_classes)
                    .with_first_stride(first_stride)
                    .init(device),
            ),
            NetworkConfig::AllConv { channels, n_classes } => {
                Network::AllConv(AllConvConfig::new().with_channels(channels).with_n_classes(n_classes).init(device))
            }
            NetworkConfig::SqueezeNet11 { channels, n_classes, .. } => Network::SqueezeNet11(
                SqueezeNetConfig::new().with_channels(channels).with_n_classes(n_classes).init(device),
            ),
        }
    }

    /// Builds the network on `device` as training starts it: initialised,
    /// then loaded with its pretrained weights when it has a file.
    pub fn build(&self, device: &Device) -> Result<Network> {
        let net = self.init(device);
        match (self, net) {
            (NetworkConfig::SqueezeNet11 { pretrained: Some(path), .. }, Network::SqueezeNet11(n)) => {
                Ok(Network::SqueezeNet11(n.load_pretrained(path)?))
            }
            (_, net) => Ok(net),
        }
    }
}

/// Counts trainable values: parameters, not batch norm's running
/// statistics (which Burn's `num_params` includes).
struct ParameterCounter {
    field: Vec<String>,
    count: usize,
}

impl ModuleVisitor for ParameterCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.field.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.field.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !matches!(self.field.last().map(String::as_str), Some("running_mean" | "running_var")) {
            self.count += param.shape().num_elements();
        }
    }
}

/// Trainable values of `module`, counted as PyTorch's `sum(p.numel() for p
/// in net.parameters())`.
pub fn trainable_parameters<M: Module>(module: &M) -> usize {
    let mut counter = ParameterCounter { field: Vec::new(), count: 0 };
    module.visit(&mut counter);
    counter.count
}

impl Network {
    /// # Shapes
    /// - input `[batch, C, H, W]`
    /// - output `[batch, n_classes]` (logits)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Lenet5(n) => n.forward(x),
            Network::Mlp(n) => n.forward(x),
            Network::Resnet20(n) => n.forward(x),
            Network::AllConv(n) => n.forward(x),
            Network::SqueezeNet11(n) => n.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_a_network_for_its_dataset_shape() {
        let device = Device::flex();
        let cases: [(&str, [usize; 3], usize); 6] = [
            ("lenet5", [1, 28, 28], 10),
            ("mlp", [2, 6, 6], 4),
            ("resnet20", [3, 32, 32], 10),
            ("resnet20-s2", [3, 69, 69], 10),
            ("allconv", [36, 35, 35], 13),
            ("squeezenet1_1", [3, 64, 64], 2),
        ];
        for (name, [c, h, w], classes) in cases {
            let cfg = NetworkConfig::by_name(name, [c, h, w], classes).unwrap();
            assert_eq!(cfg.name(), name);
            let net = cfg.build(&device).unwrap();
            let y = net.forward(Tensor::zeros([2, c, h, w], &device));
            assert_eq!(y.dims(), [2, classes], "{name}");
        }
    }

    #[test]
    fn inputs_too_small_are_refused_by_name() {
        for (name, shape) in [("lenet5", [1, 32, 32]), ("allconv", [36, 2, 35]), ("squeezenet1_1", [3, 24, 24])] {
            let err = NetworkConfig::by_name(name, shape, 2).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid network = {name}:")), "{err}");
        }
        assert!(NetworkConfig::by_name("squeezenet1_1", [3, squeezenet::MIN_SIZE, squeezenet::MIN_SIZE], 2).is_ok());
        let err = NetworkConfig::by_name("resnet56", [3, 32, 32], 10).unwrap_err().to_string();
        assert!(err.contains(&NETWORK_NAMES.join(", ")), "{err}");
    }

    #[test]
    fn the_papers_network_per_dataset() {
        let name = |d, shape, classes| NetworkConfig::for_dataset(d, shape, classes).unwrap().name();
        assert_eq!(name(DatasetName::Mnist, [1, 28, 28], 10), "lenet5");
        assert_eq!(name(DatasetName::FashionMnist, [1, 28, 28], 10), "lenet5");
        assert_eq!(name(DatasetName::Synthetic, [1, 28, 28], 4), "lenet5");
        assert_eq!(name(DatasetName::Synthetic, [2, 6, 6], 4), "mlp");
        assert_eq!(name(DatasetName::Cifar10, [3, 32, 32], 10), "resnet20");
        assert_eq!(name(DatasetName::Svhn, [3, 32, 32], 10), "resnet20");
        assert_eq!(name(DatasetName::Galaxy10, [3, 69, 69], 10), "resnet20-s2");
        assert_eq!(name(DatasetName::Remote, [36, 35, 35], 13), "allconv");
        assert_eq!(name(DatasetName::Ships, [3, 384, 384], 2), "squeezenet1_1");
        let galaxy = NetworkConfig::for_dataset(DatasetName::Galaxy10, [3, 69, 69], 10).unwrap();
        assert_eq!(galaxy, NetworkConfig::Resnet20 { channels: 3, n_classes: 10, first_stride: 2 });
    }

    #[test]
    fn json_of_old_and_new_configs_parses() {
        // Configs written before the new networks existed.
        let old: NetworkConfig = serde_json::from_str(r#"{"kind":"lenet5","channels":1,"n_classes":10}"#).unwrap();
        assert_eq!(old, NetworkConfig::Lenet5 { channels: 1, n_classes: 10 });
        let old: NetworkConfig = serde_json::from_str(r#"{"kind":"mlp","inputs":784,"n_classes":10,"hidden":128}"#).unwrap();
        assert_eq!(old.name(), "mlp");
        for cfg in [
            NetworkConfig::Resnet20 { channels: 3, n_classes: 10, first_stride: 2 },
            NetworkConfig::AllConv { channels: 36, n_classes: 13 },
            NetworkConfig::SqueezeNet11 { channels: 3, n_classes: 2, pretrained: None },
            NetworkConfig::SqueezeNet11 { channels: 3, n_classes: 2, pretrained: Some("w.safetensors".into()) },
        ] {
            let json = serde_json::to_string(&cfg).unwrap();
            assert_eq!(serde_json::from_str::<NetworkConfig>(&json).unwrap(), cfg, "{json}");
        }
        let json = serde_json::to_string(&NetworkConfig::SqueezeNet11 { channels: 3, n_classes: 2, pretrained: None }).unwrap();
        assert_eq!(json, r#"{"kind":"squeezenet1_1","channels":3,"n_classes":2}"#);
        let r: NetworkConfig = serde_json::from_str(r#"{"kind":"resnet20","channels":3,"n_classes":10}"#).unwrap();
        assert_eq!(r.name(), "resnet20");
        assert_eq!(serde_json::to_string(&NetworkConfig::AllConv { channels: 1, n_classes: 2 }).unwrap(), r#"{"kind":"allconv","channels":1,"n_classes":2}"#);
    }

    #[test]
    fn pretrained_weights_only_for_squeezenet_and_existing_files() {
        let cifar = NetworkConfig::by_name("resnet20", [3, 32, 32], 10).unwrap();
        assert_eq!(cifar.clone().with_pretrained(None).unwrap(), cifar);
        let err = cifar.with_pretrained(Some("w.safetensors".into())).unwrap_err().to_string();
        assert!(err.contains("pretrained = w.safetensors") && err.contains("resnet20"), "{err}");
        let ships = NetworkConfig::by_name("squeezenet1_1", [3, 384, 384], 2).unwrap();
        let err = ships.with_pretrained(Some("/no/such/w.safetensors".into())).unwrap_err().to_string();
        assert!(err.contains("/no/such/w.safetensors") && err.contains("no such file"), "{err}");
    }

    #[test]
    fn build_reads_the_pretrained_file_and_names_it_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.safetensors");
        std::fs::write(&path, b"not safetensors").unwrap();
        let cfg = NetworkConfig::by_name("squeezenet1_1", [3, 64, 64], 2).unwrap().with_pretrained(Some(path)).unwrap();
        let err = cfg.build(&Device::flex()).unwrap_err().to_string();
        assert!(err.contains("broken.safetensors") && err.contains("malformed safetensors"), "{err}");
    }
}
