//! A small multilayer perceptron, for synthetic data and fast tests.

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

/// Settings of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Values per input (C·H·W).
    pub inputs: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Hidden units.
    #[config(default = 128)]
    pub hidden: usize,
}

/// flatten → fc hidden → ReLU → fc classes.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    relu: Relu,
}

impl MlpConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            fc1: LinearConfig::new(self.inputs, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.n_classes).init(device),
            relu: Relu::new(),
        }
    }
}

impl Mlp {
    /// # Shapes
    /// - input `[batch, C, H, W]`
    /// - output `[batch, n_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let x = x.reshape([b, c * h * w]); // [b, C·H·W]
        let x = self.relu.forward(self.fc1.forward(x)); // [b, hidden]
        self.fc2.forward(x) // [b, n_classes]
    }
}
