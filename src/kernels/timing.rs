//! Opt-in phase timers for profiling the training step.
//!
//! Off by default (one relaxed atomic load per timed region). `selmask bench
//! train-epoch --profile` turns them on and prints where an epoch's time
//! goes, which is how the kernels here were tuned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The timed phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Building the patch matrix.
    Im2row,
    /// Forward convolution GEMM.
    ConvGemm,
    /// Fused ReLU + max pooling, forward.
    PoolForward,
    /// Fused ReLU + max pooling, backward.
    PoolBackward,
    /// Weight-gradient GEMM.
    WeightGradGemm,
    /// Patch-gradient GEMM.
    PatchGradGemm,
    /// Scattering patch gradients back to the input.
    Row2im,
    /// Layout conversions and weight reordering.
    Layout,
    /// Mask, network and loss forward (whole).
    StepForward,
    /// Autodiff backward (whole).
    StepBackward,
    /// Both optimiser steps.
    StepOptimizer,
    /// Reading the losses back.
    StepReadback,
}

const PHASES: [(Phase, &str); 12] = [
    (Phase::Im2row, "conv: im2row"),
    (Phase::ConvGemm, "conv: forward GEMM"),
    (Phase::PoolForward, "relu+pool forward"),
    (Phase::PoolBackward, "relu+pool backward"),
    (Phase::WeightGradGemm, "conv: weight-gradient GEMM"),
    (Phase::PatchGradGemm, "conv: input-gradient GEMM"),
    (Phase::Row2im, "conv: row2im"),
    (Phase::Layout, "conv: layout/reorder"),
    (Phase::StepForward, "step: forward (total)"),
    (Phase::StepBackward, "step: backward (total)"),
    (Phase::StepOptimizer, "step: optimisers (total)"),
    (Phase::StepReadback, "step: loss read-back"),
];

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];

/// Turns the timers on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Runs `f`, adding its wall time to `phase` when timers are on.
#[inline]
pub fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let idx = PHASES.iter().position(|(p, _)| *p == phase).expect("listed phase");
    NANOS[idx].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

/// Accumulated seconds per phase (name, seconds), and resets them.
pub fn take() -> Vec<(&'static str, f64)> {
    PHASES
        .iter()
        .zip(&NANOS)
        .map(|((_, name), n)| (*name, n.swap(0, Ordering::Relaxed) as f64 * 1e-9))
        .collect()
}
