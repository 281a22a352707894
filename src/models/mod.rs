//! Prediction networks, behind one [`Network`] type.

pub mod lenet5;
pub mod mlp;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use lenet5::{LeNet5, LeNet5Config};
use mlp::{Mlp, MlpConfig};

/// Which network, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetworkConfig {
    /// LeNet5 (MNIST-shaped inputs).
    Lenet5 { channels: usize, n_classes: usize },
    /// A one-hidden-layer perceptron.
    Mlp { inputs: usize, n_classes: usize, hidden: usize },
}

/// A prediction network.
#[derive(Module, Debug)]
pub enum Network {
    /// See [`LeNet5`].
    Lenet5(LeNet5),
    /// See [`Mlp`].
    Mlp(Mlp),
}

impl NetworkConfig {
    /// The network named `name` for inputs of `shape` with `n_classes` classes.
    pub fn by_name(name: &str, shape: [usize; 3], n_classes: usize) -> Result<Self> {
        let [c, h, w] = shape;
        match name {
            "lenet5" => {
                if h != 28 || w != 28 {
                    return Err(Error::config(
                        "network",
                        name,
                        format!("lenet5 needs 28x28 inputs, the dataset has {h}x{w}"),
                    ));
                }
                Ok(NetworkConfig::Lenet5 { channels: c, n_classes })
            }
            "mlp" => Ok(NetworkConfig::Mlp { inputs: c * h * w, n_classes, hidden: 128 }),
            _ => Err(Error::config("network", name, "known networks: lenet5, mlp")),
        }
    }

    /// Short name, as accepted by [`NetworkConfig::by_name`].
    pub fn name(&self) -> &'static str {
        match self {
            NetworkConfig::Lenet5 { .. } => "lenet5",
            NetworkConfig::Mlp { .. } => "mlp",
        }
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> Network {
        match *self {
            NetworkConfig::Lenet5 { channels, n_classes } => {
                Network::Lenet5(LeNet5Config::new().with_channels(channels).with_n_classes(n_classes).init(device))
            }
            NetworkConfig::Mlp { inputs, n_classes, hidden } => {
                Network::Mlp(MlpConfig::new(inputs, n_classes).with_hidden(hidden).init(device))
            }
        }
    }
}

impl Network {
    /// # Shapes
    /// - input `[batch, C, H, W]`
    /// - output `[batch, n_classes]` (logits)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Lenet5(n) => n.forward(x),
            Network::Mlp(n) => n.forward(x),
        }
    }
}
