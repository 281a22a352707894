//! Budget-targeted training (`--target-q`) lands Q within the budget.

use selmask::masks::MaskConfig;
use selmask::training::budget::TargetQConfig;
use selmask::training::metrics::{EpochMetrics, read_jsonl};
use selmask::training::optim::OptimConfig;
use selmask::training::progress::{Progress, Verbosity};
use selmask::training::run::PreparedData;
use selmask::masks::schedule::LambdaScheduleConfig;
use selmask::training::{MaskType, TrainConfig};

use selmask::data::synthetic::SyntheticConfig;
use selmask_wire::granularity::Granularity;

use crate::fixtures::{device, linear_dynamic, synthetic_config};

/// The small synthetic problem with the defaults of `selmask train`: both
/// learning rates 0.001, λ from 1 (×1.25 on plateaus, patience 1), logits
/// from 3, and `--target-q q`.
fn budget_config(mask_type: MaskType, q: f64, n_epochs: usize) -> (selmask::data::synthetic::SyntheticData, TrainConfig) {
    // 40 of the 100 pixels carry the class: a budget of 0.25 binds (every
    // dropped informative pixel costs accuracy), so the optimum sits at it.
    let data = SyntheticConfig {
        shape: [1, 10, 10],
        granularity: Granularity::Pixel,
        n_informative: 40,
        n_classes: 4,
        n_train: 3000,
        n_test: 500,
        seed: 11,
        moving: false,
    }
    .generate();
    let mut config = synthetic_config(&data, n_epochs);
    config.optim = OptimConfig::default();
    config.lambda = LambdaScheduleConfig { init: 1.0, factor: 1.25, patience: 1, threshold: 0.0025, cooldown: 0 };
    config.target_q = Some(TargetQConfig::new(q));
    config.mask_type = mask_type;
    if mask_type == MaskType::Dynamic {
        // The synthetic inputs have zero mean and the linear model no bias:
        // without the per-cell bias (`--dynamic-learn-static 1`, the default
        // with `--target-q`; the fixture learns it) W·x cannot lower most
        // logits at once, and Q stays near 0.5.
        config.mask = MaskConfig::Dynamic(linear_dynamic(&data, Granularity::Pixel));
    }
    (data, config)
}

fn run_budget(mask_type: MaskType) -> Vec<EpochMetrics> {
    let (data, config) = budget_config(mask_type, 0.25, 150);
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    config.fit(&prepared, dir.path(), 0, &device, &Progress::new(Verbosity::Quiet, "test")).unwrap();
    read_jsonl(&dir.path().join("metrics.jsonl")).unwrap()
}

fn trace(metrics: &[EpochMetrics]) -> String {
    metrics.iter().map(|m| format!("\n  e{} q {:.4} λ {:.3e} val {:.3}", m.epoch, m.q, m.lambda, m.val_accuracy.unwrap_or(0.0))).collect()
}

/// Q ends within [Q* − 0.02, Q*], and after reaching the budget never
/// collapses far below it (data seeds 11 to 15 all passed).
fn assert_lands_in_budget(metrics: &[EpochMetrics]) {
    let last = metrics.last().unwrap();
    assert!((0.23 - 1e-9..=0.25 + 1e-9).contains(&last.q), "final Q {}: {}", last.q, trace(metrics));
    let arrived = metrics.iter().position(|m| m.q <= 0.25).unwrap();
    let lowest = metrics[arrived..].iter().map(|m| m.q).fold(1.0, f64::min);
    assert!(lowest >= 0.15, "Q fell to {lowest} after reaching the budget: {}", trace(metrics));
}

#[test]
fn a_static_mask_with_target_q_quarter_ends_within_two_points_below_it() {
    assert_lands_in_budget(&run_budget(MaskType::Static));
}

/// The dynamic mask brakes, but overshoots (to about 0.20 before the logit
/// shift); the shift brings cells back into the band.
#[test]
fn a_dynamic_mask_with_target_q_quarter_ends_within_two_points_below_it() {
    assert_lands_in_budget(&run_budget(MaskType::Dynamic));
}

/// `selmask train --dataset synthetic --target-q 0.25`, default flags
/// otherwise: 20 informative pixels of 784, so the budget does not bind
/// (the task alone would keep fewer cells) and only the controller holds Q
/// at the budget. Returns the epochs of run_0.
fn cli_budget_run(mask_type: &str) -> Vec<EpochMetrics> {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let out = crate::fixtures::selmask(&[
        "train", "--dataset", "synthetic", "--mask-type", mask_type, "--target-q", "0.25", "--n-repeats", "1",
        "--exp-dir", exp, "--name", "budget", "--quiet",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    read_jsonl(&dir.path().join(format!("synthetic/{mask_type}/budget/run_0/metrics.jsonl"))).unwrap()
}

#[test]
fn selmask_train_static_with_target_q_quarter_on_synthetic_data_ends_in_the_band() {
    let metrics = cli_budget_run("static");
    let last = metrics.last().unwrap();
    assert!((0.23 - 1e-9..=0.25 + 1e-9).contains(&last.q), "final Q {}: {}", last.q, trace(&metrics));
}

#[test]
fn selmask_train_dynamic_with_target_q_quarter_on_synthetic_data_ends_in_the_band() {
    let metrics = cli_budget_run("dynamic");
    let last = metrics.last().unwrap();
    assert!((0.23 - 1e-9..=0.25 + 1e-9).contains(&last.q), "final Q {}: {}", last.q, trace(&metrics));
}
