//! One optimisation step of the network and the mask.

use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::data::batch::Batch;
use crate::kernels::timing::{Phase, timed};
use crate::masks::Mask;
use crate::masks::scheduled::CellSchedule;
use crate::models::Network;

/// The trainable state: the network and the mask with their optimisers
/// (separate, as the paper: different learning rates and weight decays).
pub struct Learner {
    /// The network.
    pub net: Network,
    /// The network's optimiser.
    pub net_optim: ModuleOptimizer,
    /// The mask (absent for a plain network).
    pub mask: Option<Mask>,
    /// The mask's optimiser.
    pub mask_optim: ModuleOptimizer,
    /// For the baselines: the schedule that sets the (static) mask.
    pub schedule: Option<CellSchedule>,
}

/// Losses of one step, read back from the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    /// Task loss + λ·Q.
    pub loss: f32,
    /// Cross-entropy.
    pub task: f32,
    /// Q of the batch (1 without a mask).
    pub q: f32,
}

impl StepLosses {
    /// Whether every value is finite.
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite() && self.task.is_finite() && self.q.is_finite()
    }
}

/// Settings of one step.
#[derive(Debug, Clone, Copy)]
pub struct StepParams {
    /// Weight of Q in the objective.
    pub lambda: f64,
    /// Mask temperature.
    pub tau: f64,
    /// Network learning rate.
    pub lr_net: f64,
    /// Mask learning rate.
    pub lr_mask: f64,
    /// Keep the mask as it is (only the network learns).
    pub freeze_mask: bool,
}

impl Learner {
    /// Forward, backward and both optimiser steps on one batch. Nothing is
    /// updated when the loss is not finite (the caller stops the run).
    ///
    /// Takes and returns `self`: the optimisers consume the modules, and
    /// owning the only reference lets Burn update parameters in place.
    pub fn step(mut self, batch: Batch, ce: &CrossEntropyLoss, p: StepParams) -> (Self, StepLosses) {
        if let Some(schedule) = &mut self.schedule
            && schedule.step()
            && let Some(Mask::Static(mask)) = &mut self.mask
        {
            mask.set_logits(&schedule.logits());
        }
        let (loss, task, q) = timed(Phase::StepForward, || {
            let (x, q) = match &self.mask {
                Some(mask) => {
                    let masked = mask.forward(batch.images, p.tau);
                    (masked.x, Some(masked.q))
                }
                None => (batch.images, None),
            };
            let logits = self.net.forward(x); // [b, classes]
            let task = ce.forward(logits, batch.labels); // [1]
            match q {
                Some(q) => (task.clone() + q.clone().mul_scalar(p.lambda), task, q),
                None => (task.clone(), task.clone(), Tensor::<1>::ones([1], &task.device())),
            }
        });
        // One read-back for the three numbers.
        let values = timed(Phase::StepReadback, || {
            Tensor::cat(vec![loss.clone().detach(), task.detach(), q.detach()], 0)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("three f32 values")
        });
        let losses = StepLosses { loss: values[0], task: values[1], q: values[2] };
        if !losses.is_finite() {
            return (self, losses);
        }
        let mut grads = timed(Phase::StepBackward, || loss.backward());
        let learner = timed(Phase::StepOptimizer, move || {
            let net_grads = GradientsParams::from_module(&mut grads, &self.net);
            if !p.freeze_mask
                && self.schedule.is_none()
                && let Some(mask) = self.mask.take()
            {
                let mask_grads = GradientsParams::from_module(&mut grads, &mask);
                self.mask = Some(self.mask_optim.step(p.lr_mask, mask, mask_grads));
            }
            self.net = self.net_optim.step(p.lr_net, self.net, net_grads);
            self
        });
        (learner, losses)
    }
}
