//! The paper's optimiser is PyTorch's AdamW with AMSGrad: check Burn's
//! implementation, as configured by `OptimConfig`, against that update rule.

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use selmask::training::optim::OptimConfig;

use crate::fixtures::device;

#[derive(Module, Debug)]
struct Weights {
    w: Param<Tensor<1>>,
}

/// PyTorch's AdamW(amsgrad=True) step, in f64.
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    v_max: Vec<f64>,
    t: i32,
}

impl Reference {
    fn step(&mut self, g: &[f64], lr: f64, wd: f64, (b1, b2, eps): (f64, f64, f64)) {
        self.t += 1;
        for i in 0..self.p.len() {
            self.p[i] *= 1.0 - lr * wd;
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            self.v_max[i] = self.v_max[i].max(self.v[i]);
            let denom = (self.v_max[i] / (1.0 - b2.powi(self.t))).sqrt() + eps;
            self.p[i] -= lr * (self.m[i] / (1.0 - b1.powi(self.t))) / denom;
        }
    }
}

#[test]
fn adamw_amsgrad_follows_pytorchs_update_rule() {
    let device = device();
    let cfg = OptimConfig { lr_net: 0.01, ..OptimConfig::default() };
    assert_eq!((cfg.beta_1, cfg.beta_2, cfg.epsilon, cfg.weight_decay_net), (0.5, 0.999, 1e-8, 1e-4));
    let start = [0.5, -1.5, 2.0];
    let mut module = Weights { w: Param::from_tensor(Tensor::<1>::from_floats(start, &device)) };
    let mut optim = cfg.net();
    let mut reference = Reference { p: start.to_vec(), m: vec![0.0; 3], v: vec![0.0; 3], v_max: vec![0.0; 3], t: 0 };
    // Large then small gradients: AMSGrad's running maximum matters.
    let gradients = [[1.0, -2.0, 0.5], [0.1, -0.1, 3.0], [0.01, 0.0, -0.01], [-0.5, 0.2, 0.0]];
    for g in gradients {
        // loss = <g, w> has gradient g.
        let loss = (module.w.val() * Tensor::<1>::from_floats(g, &device)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &module);
        module = optim.step(cfg.lr_net, module, grads);
        reference.step(&g, cfg.lr_net, cfg.weight_decay_net as f64, (0.5, 0.999, 1e-8));
        let got: Vec<f32> = module.w.val().into_data().try_to_vec().unwrap();
        for (a, b) in got.iter().zip(&reference.p) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {:?}", reference.p);
        }
    }
}
