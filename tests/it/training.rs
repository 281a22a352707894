//! Training end to end: learning is real, checkpoints and warm-up files
//! round-trip, failures leave earlier files intact, the CLI writes its run
//! directory.

use std::process::Command;

use burn::module::Module;

use selmask::data::DatasetName;
use selmask::error::Error;
use selmask_wire::granularity::Granularity;
use selmask::masks::{Mask, MaskConfig};
use selmask::models::NetworkConfig;
use selmask::models::weights::module_tensors;
use selmask::training::checkpoint::{SelectionModel, load_warmup, warmup_path};
use selmask::training::evaluate::evaluate;
use selmask::training::metrics::{EpochMetrics, read_jsonl};
use selmask::training::pretrain::pretrain;
use selmask::training::progress::{Progress, Verbosity};
use selmask::training::run::{PreparedData, RunSummary};
use selmask::training::step::{Learner, StepParams};
use selmask_wire::util::read_json;

use crate::fixtures::{device, small_synthetic, synthetic_config};

fn quiet() -> Progress {
    Progress::new(Verbosity::Quiet, "test")
}

#[test]
fn static_mask_finds_the_informative_cells() {
    let data = small_synthetic(1);
    let device = device();
    let config = synthetic_config(&data, 15);
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (summary, learner) = config.fit_learner(&prepared, dir.path(), 0, &device, &quiet()).unwrap();
    let Some(Mask::Static(mask)) = learner.mask.as_ref() else { panic!("a static mask") };
    let hard = mask.hard_mask(1.0).values;
    let kept_informative = data.informative.iter().filter(|&&c| hard[c] == 1.0).count();
    let kept_other = hard.iter().filter(|&&v| v == 1.0).count() - kept_informative;
    let n_other = hard.len() - data.informative.len();
    assert!(
        kept_informative * 10 >= data.informative.len() * 9,
        "kept {kept_informative} of {} informative cells",
        data.informative.len()
    );
    assert!(kept_other * 10 <= n_other, "kept {kept_other} of {n_other} uninformative cells");
    // And the network still solves the task on what is left.
    let last = summary.last.unwrap();
    assert!(last.test_accuracy > 0.8, "test accuracy {}", last.test_accuracy);
    assert!(last.q < 0.2, "q {}", last.q);
}

#[test]
fn checkpoints_reload_to_the_recorded_accuracy() {
    let data = small_synthetic(2);
    let device = device();
    let config = synthetic_config(&data, 3);
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = config.fit(&prepared, dir.path(), 0, &device, &quiet()).unwrap();
    assert_eq!(summary, read_json::<RunSummary>(&dir.path().join("summary.json")).unwrap());
    assert!(!summary.curve.points.is_empty());
    for point in &summary.curve.points {
        let model = SelectionModel::load(&dir.path().join(&point.checkpoint), &device).unwrap();
        assert_eq!(&model.meta.point, point);
        let eval = evaluate(&model.net, model.mask.as_ref(), model.meta.tau, &prepared.test, 100).unwrap();
        assert_eq!(eval.accuracy, point.test_accuracy, "{}", point.checkpoint.display());
        assert!((eval.q - point.q).abs() < 1e-12, "{} vs {}", eval.q, point.q);
    }
    let metrics: Vec<EpochMetrics> = read_jsonl(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 3);
    assert!(metrics.iter().all(|m| m.val_accuracy.is_some() && m.seconds > 0.0));
}

#[test]
fn non_finite_loss_stops_and_keeps_earlier_checkpoints() {
    let data = small_synthetic(3);
    let device = device();
    let mut config = synthetic_config(&data, 5);
    // Q cannot move (tiny mask learning rate), so lambda grows after epoch 2
    // by a factor that makes it infinite in f32: epoch 3 must stop.
    config.optim.lr_mask = 1e-9;
    config.lambda.init = 1e-3;
    config.lambda.factor = 1e303;
    config.lambda.patience = 0;
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = config.fit(&prepared, dir.path(), 0, &device, &quiet()).unwrap_err();
    match &err {
        Error::NonFiniteLoss { epoch, batch, .. } => assert_eq!((*epoch, *batch), (3, 0)),
        other => panic!("expected a non-finite loss, got {other}"),
    }
    assert!(err.to_string().contains("checkpoints already written"), "{err}");
    // Two complete epochs are on disk and their checkpoint still loads.
    let summary: RunSummary = read_json(&dir.path().join("summary.json")).unwrap();
    assert_eq!(summary.epochs_completed, 2);
    let metrics: Vec<EpochMetrics> = read_jsonl(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 2);
    let point = &summary.curve.points[0];
    let model = SelectionModel::load(&dir.path().join(&point.checkpoint), &device).unwrap();
    assert_eq!(model.meta.point.epoch, point.epoch);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The budget controller shifts the mask's logits between steps: the
/// shifted logits must stay a learnable leaf (shifting the tracked tensor
/// itself made the next backward pass panic on a consumed graph).
#[test]
fn a_mask_shifted_between_steps_keeps_learning() {
    let data = small_synthetic(4);
    let device = device();
    let mut config = synthetic_config(&data, 1);
    let dynamic = MaskConfig::Dynamic(crate::fixtures::linear_dynamic(&data, Granularity::Pixel));
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let batch = prepared.train.ordered(64).next().unwrap().unwrap();
    let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let params = StepParams { lambda: 1.0, tau: 1.0, lr_net: 0.001, lr_mask: 0.01, freeze_mask: false };
    for mask in [config.mask.clone(), dynamic] {
        config.mask = mask;
        let learner = Learner {
            net: config.network.init(&device),
            net_optim: config.optim.net(),
            mask: Some(config.selection_mask().unwrap().init(&device).unwrap()),
            mask_optim: config.optim.mask(),
            schedule: None,
        };
        let (mut learner, first) = learner.step(batch.clone(), &ce, params);
        assert_eq!(first.q, 1.0, "every cell starts selected");
        // Below zero: the batch's Q drops to (nearly) nothing at once.
        learner.mask = learner.mask.map(|m| m.shift_logits(-3.5));
        let (mut learner, shifted) = learner.step(batch.clone(), &ce, params);
        assert!(shifted.q < 0.5, "Q {} after shifting every logit by -3.5", shifted.q);
        learner.mask = learner.mask.map(|m| m.shift_logits(3.5));
        let before = module_tensors(learner.mask.as_ref().unwrap());
        let (learner, back) = learner.step(batch.clone(), &ce, params);
        assert!(back.q > 0.5, "Q {} after shifting back", back.q);
        assert_ne!(module_tensors(learner.mask.as_ref().unwrap()), before, "the mask stopped learning");
    }
}

#[test]
fn warm_up_network_and_optimiser_state_carry_over() {
    let data = small_synthetic(4);
    let device = device();
    let config = synthetic_config(&data, 2);
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = warmup_path(dir.path(), DatasetName::Synthetic);
    let meta = pretrain(&config, &prepared, &dir.path().join("pre"), &out, &device, &quiet()).unwrap();
    assert_eq!(meta.epochs, 2);
    assert!(meta.test_accuracy > 0.5, "{}", meta.test_accuracy);

    // The optimiser comes back with its state (Adam's moments after two
    // epochs), not as a fresh one: its record differs from a fresh one's,
    // and one step from it moves the network differently.
    let (warm_net, warm_optim, _) = load_warmup(&out, &config.network, config.optim.net(), &device).unwrap();
    let fresh_bytes = config.optim.net().into_bytes().unwrap().to_vec();
    assert_ne!(warm_optim.into_bytes().unwrap().to_vec(), fresh_bytes, "the warm-up's optimiser state is empty");
    let batch = prepared.train.ordered(64).next().unwrap().unwrap();
    let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
    let params = StepParams { lambda: 0.0, tau: 1.0, lr_net: config.optim.lr_net, lr_mask: 0.0, freeze_mask: true };
    let step_from = |optim| {
        let learner = Learner { net: warm_net.clone(), net_optim: optim, mask: None, mask_optim: config.optim.mask(), schedule: None };
        module_tensors(&learner.step(batch.clone(), &ce, params).0.net)
    };
    let (with_state, fresh) = (step_from(warm_optim), step_from(config.optim.net()));
    assert_ne!(with_state, fresh, "the loaded optimiser stepped as a fresh one");

    // A run from the warm-up starts where pretraining ended: its epoch-1
    // network (with only 1 epoch of masked training) beats a cold start.
    let mut warm = synthetic_config(&data, 1);
    warm.warmup = Some(out.clone());
    let warm_summary = warm.fit(&prepared, &dir.path().join("warm"), 0, &device, &quiet()).unwrap();
    let cold_summary = synthetic_config(&data, 1).fit(&prepared, &dir.path().join("cold"), 0, &device, &quiet()).unwrap();
    let (w, c) = (warm_summary.last.unwrap().test_accuracy, cold_summary.last.unwrap().test_accuracy);
    assert!(w > c, "warm {w} vs cold {c}");

    // A missing warm-up file says how to make one.
    let mut missing = synthetic_config(&data, 1);
    missing.warmup = Some(dir.path().join("nope.warmup"));
    let msg = missing.fit(&prepared, &dir.path().join("m"), 0, &device, &quiet()).unwrap_err().to_string();
    assert!(msg.contains("selmask pretrain --dataset synthetic"), "{msg}");
}

fn selmask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_selmask")).args(args).output().unwrap()
}

#[test]
fn reproduce_passes_pretrained_weights_to_warm_up_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("squeezenet1_1.safetensors");
    std::fs::write(&weights, b"read only when training starts").unwrap();
    let w = weights.to_str().unwrap();
    let out = selmask(&["reproduce", "dynamic-ships-grid12", "--dry-run", "--pretrained", w]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("--pretrained {w}")), "{stdout}");
}

#[test]
fn reproduce_dry_run_of_the_ships_grid_shows_the_scripts_preview_batch_and_upscaling() {
    let out = selmask(&["reproduce", "dynamic-ships-grid12", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["--dynamic-h 12 --dynamic-w 12 --batch-size 256", "--input-drop-upscaling false", "--any-granularity subCXLIVdrant"] {
        assert!(stdout.contains(needle), "missing {needle}: {stdout}");
    }
    // The script's name finds the same preset; the paper protocol decides on test.
    let out = selmask(&["reproduce", "dynamic_12x12block_ships", "--protocol", "paper", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--val-split 0 --select-on test") && stdout.contains("--name dynamic-ships-grid12-paper"), "{stdout}");
}

#[test]
fn reproduce_refuses_unknown_presets_bad_choices_and_missing_maps_by_name() {
    let out = selmask(&["reproduce", "static-mnist", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown experiment 'static-mnist'") && err.contains("static-mnist-pixel"), "{err}");
    let out = selmask(&["reproduce", "static-mnist-pixel", "--protocol", "foo"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'foo' for '--protocol"));
    let dir = tempfile::tempdir().unwrap();
    for i in [1, 2] {
        std::fs::write(dir.path().join(format!("mnist_rf_{i}.npy")), b"checked when training starts").unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let out = selmask(&["reproduce", "given-mnist-pixel", "--given-mask-dir", d, "--n-repeats", "3", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mnist_rf_3.npy") && err.contains("run_2"), "{err}");
    // Overrides the train parser refuses are named.
    let out = selmask(&["reproduce", "static-mnist-pixel", "--dry-run", "--", "--no-such-flag"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn cli_trains_into_the_papers_run_layout() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let args = [
        "train", "--dataset", "synthetic", "--network", "mlp", "--mask-type", "static", "--any-granularity", "pixel",
        "--n-epochs", "2", "--n-repeats", "2", "--lr", "0.05", "--exp-dir", exp, "--quiet",
    ];
    let out = selmask(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("accuracy vs Q") && stdout.contains("test acc"), "{stdout}");
    let experiment = dir.path().join("synthetic/static/any_granularity-pixel_lr-0.05_n_epochs-2_network-mlp");
    assert!(experiment.join("args.json").is_file());
    for run in ["run_0", "run_1"] {
        let run_dir = experiment.join(run);
        for file in ["config.json", "metrics.jsonl", "summary.json"] {
            assert!(run_dir.join(file).is_file(), "{run}/{file}");
        }
    }
    // Running again skips finished runs.
    let again = selmask(&args);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already finished"));

    // Errors name the problem and exit non-zero.
    let bad = selmask(&["train", "--dataset", "synthetic", "--mask-type", "static", "--any-granularity", "tiles"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown granularity 'tiles'"));
    let missing = selmask(&["train", "--dataset", "mnist", "--mask-type", "static", "--data-dir", exp]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no mnist data found"));
}

#[test]
fn help_lists_every_flag_with_defaults() {
    let out = selmask(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--dataset", "--mask-type", "--batch-size", "--lr ", "--lr-net", "--tau-init", "--tau-min", "--tau-factor",
        "--n-repeats", "--n-epochs", "--lambda-patience", "--lambda-factor", "--lambda-init", "--lambda-threshold",
        "--any-granularity", "--any-init-mean", "--input-drop-upscaling", "--use-any-mask", "--use-warmup-net",
        "--warmup-dir", "--exp-dir", "--checkpoint-qloss-interval", "--log-iter", "--data-dir", "--val-split",
        "--select-on", "--seed", "--backend",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("[default: 128]") && help.contains("[default: 0.0025]"), "{help}");
}

#[test]
fn fine_tuning_a_checkpoint_keeps_its_mask_and_improves_the_network() {
    let data = small_synthetic(5);
    let device = device();
    let mut config = synthetic_config(&data, 2);
    config.optim.lr_net = 5e-4;
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = config.fit(&prepared, &dir.path().join("base"), 0, &device, &quiet()).unwrap();
    let point = summary.curve.points.iter().min_by(|a, b| a.q.total_cmp(&b.q)).unwrap().clone();
    let ckpt = dir.path().join("base").join(&point.checkpoint);
    let before = SelectionModel::load(&ckpt, &device).unwrap();

    let mut tune = synthetic_config(&data, 3);
    tune.init_checkpoint = Some(ckpt);
    tune.freeze_mask = true;
    let (tuned, learner) = tune.fit_learner(&prepared, &dir.path().join("tuned"), 0, &device, &quiet()).unwrap();
    let hard = |m: Option<Mask>| match m {
        Some(Mask::Static(m)) => m.hard_mask(1.0).values,
        _ => panic!("a static mask"),
    };
    let net_before = module_tensors(&before.net);
    let mask_before = hard(before.mask);
    assert_eq!(hard(learner.mask), mask_before);
    assert_eq!(tuned.curve.points.len(), 1);
    assert_eq!(tuned.curve.points[0].q, point.q);
    assert!(
        tuned.curve.points[0].val_accuracy.unwrap() >= point.val_accuracy.unwrap(),
        "{:?} vs {:?}",
        tuned.curve.points[0].val_accuracy,
        point.val_accuracy
    );
    // The network did change (and learned): every layer moved, and the
    // task loss fell over the fine-tuning epochs.
    let net_after = module_tensors(&learner.net);
    for (name, t) in &net_before {
        assert_ne!(&net_after[name], t, "{name} unchanged by fine-tuning");
    }
    let tuned_metrics: Vec<EpochMetrics> = read_jsonl(&dir.path().join("tuned/metrics.jsonl")).unwrap();
    assert!(
        tuned_metrics[2].task_loss < tuned_metrics[0].task_loss,
        "task loss while fine-tuning: {:?}",
        tuned_metrics.iter().map(|m| m.task_loss).collect::<Vec<_>>()
    );

    // A run with another mask or network cannot start from it, and the
    // error says which of the two differs.
    let refused = |config: &selmask::training::TrainConfig, what: &str| {
        let Err(err) = config.fit(&prepared, &dir.path().join("refused"), 0, &device, &quiet()) else {
            panic!("{what}: a different run started from the checkpoint")
        };
        let msg = err.to_string();
        assert!(msg.contains(&format!("its {what} is")) && msg.contains(".ckpt"), "{msg}");
    };
    let mut other_mask = tune.clone();
    if let MaskConfig::Static(m) = &mut other_mask.mask {
        m.granularity = Granularity::Grid { cells: 2, per_channel: false };
    }
    refused(&other_mask, "mask");
    // Another initialisation of the same mask is no other mask: the
    // checkpoint's logits replace it.
    let mut other_init = tune.clone();
    if let MaskConfig::Static(m) = &mut other_init.mask {
        m.init_mean = -1.0;
    }
    other_init.fit(&prepared, &dir.path().join("other_init"), 0, &device, &quiet()).unwrap();
    let mut other_net = tune.clone();
    other_net.network = NetworkConfig::Mlp { inputs: 100, n_classes: 4, hidden: 64 };
    refused(&other_net, "network");
}

/// The curve a run should keep, computed from its `metrics.jsonl` alone:
/// per Q interval of `width`, the epoch with the best selection accuracy
/// (validation accuracy when `on_val`, else test accuracy), the earliest
/// among equals. `(interval start, epoch)`, by interval.
fn best_epochs_per_interval(metrics: &[EpochMetrics], width: f64, on_val: bool) -> Vec<(f64, usize)> {
    let n = (1.0 / width).round() as usize;
    let mut best: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for m in metrics {
        let acc = if on_val { m.val_accuracy.expect("a validation accuracy") } else { m.test_accuracy };
        let bucket = ((m.q / width + 1e-9).floor() as usize).min(n - 1);
        match best.get(&bucket) {
            Some(&(a, _)) if a >= acc => {}
            _ => {
                best.insert(bucket, (acc, m.epoch));
            }
        }
    }
    best.into_iter().map(|(b, (_, e))| (b as f64 * width, e)).collect()
}

/// Checks `summary.json` and the checkpoints of the run in `dir` against
/// its `metrics.jsonl`; returns how many intervals held more than one epoch
/// whose best was not the last of them.
fn check_selection(dir: &std::path::Path, prepared: &PreparedData, on_val: bool) -> usize {
    let device = device();
    let summary: RunSummary = read_json(&dir.join("summary.json")).unwrap();
    let metrics: Vec<EpochMetrics> = read_jsonl(&dir.join("metrics.jsonl")).unwrap();
    let want = best_epochs_per_interval(&metrics, summary.curve.width, on_val);
    let got: Vec<(f64, usize)> = summary.curve.points.iter().map(|p| (p.interval[0], p.epoch)).collect();
    assert_eq!(got.len(), want.len(), "intervals: summary {got:?}, metrics {want:?}");
    for ((gi, ge), (wi, we)) in got.iter().zip(&want) {
        assert!((gi - wi).abs() < 1e-9 && ge == we, "summary {got:?}, from metrics {want:?}");
    }
    let mut informative = 0;
    for point in &summary.curve.points {
        let m = &metrics[point.epoch - 1];
        let selection = if on_val { m.val_accuracy.unwrap() } else { m.test_accuracy };
        assert_eq!((point.q, point.selection_accuracy, point.test_accuracy, point.val_accuracy), (m.q, selection, m.test_accuracy, m.val_accuracy));
        // The checkpoint holds that epoch's network and mask: evaluated
        // again, they give that epoch's accuracies.
        let model = SelectionModel::load(&dir.join(&point.checkpoint), &device).unwrap();
        assert_eq!(model.meta.point.epoch, point.epoch);
        let (net, mask) = (model.net.valid(), model.mask.map(|m| m.valid()));
        let eval = |split| evaluate(&net, mask.as_ref(), model.meta.tau, split, 500).unwrap();
        assert_eq!(eval(&prepared.test).accuracy, m.test_accuracy, "{}", point.checkpoint.display());
        if let Some(val) = &prepared.val {
            assert_eq!(Some(eval(val).accuracy), m.val_accuracy, "{}", point.checkpoint.display());
        }
        let same: Vec<usize> = metrics
            .iter()
            .filter(|o| (o.q - point.interval[0]) >= -1e-9 && o.q < point.interval[1] - 1e-9 || (point.interval[1] == 1.0 && o.q == 1.0))
            .map(|o| o.epoch)
            .collect();
        informative += usize::from(same.len() > 1 && same.last() != Some(&point.epoch));
    }
    informative
}

#[test]
fn each_q_interval_keeps_its_best_epoch_on_the_selection_split_in_its_checkpoint() {
    use selmask::training::SelectOn;
    let data = small_synthetic(9);
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    let mut informative = [0usize; 2];
    for (i, select_on) in [SelectOn::Val, SelectOn::Test].into_iter().enumerate() {
        // A frozen mask keeps every epoch in one interval (Q = 1), so the
        // choice among epochs is the whole test; a learned mask with a slow
        // step spreads epochs over a few intervals.
        for frozen in [true, false] {
            let mut config = synthetic_config(&data, 6);
            config.select_on = select_on;
            // A small validation split: its accuracy and the test's disagree
            // on the best epoch.
            config.val_split = 0.05;
            config.optim.lr_net = 2e-2;
            config.freeze_mask = frozen;
            config.optim.lr_mask = 0.02;
            let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
            let run = dir.path().join(format!("{select_on:?}-{frozen}"));
            let summary = config.fit(&prepared, &run, 0, &device, &quiet()).unwrap();
            assert_eq!(summary.select_on, select_on);
            informative[i] += check_selection(&run, &prepared, select_on == SelectOn::Val);
        }
    }
    // Not vacuous: some interval chose an epoch before its last one.
    assert!(informative.iter().all(|&n| n > 0), "{informative:?}");
}

#[test]
fn without_a_validation_split_the_test_split_selects() {
    let data = small_synthetic(10);
    let device = device();
    let mut config = synthetic_config(&data, 4);
    config.val_split = 0.0;
    config.freeze_mask = true;
    config.optim.lr_net = 2e-2;
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    assert!(prepared.val.is_none());
    let dir = tempfile::tempdir().unwrap();
    // Selecting on a validation split that is not there is refused, naming
    // the way out.
    let err = config.fit(&prepared, dir.path(), 0, &device, &quiet()).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { field, .. } if *field == "val-split"), "{err:?}");
    assert!(err.to_string().contains("--select-on test"), "{err}");
    config.select_on = selmask::training::SelectOn::Test;
    let summary = config.fit(&prepared, dir.path(), 0, &device, &quiet()).unwrap();
    let config_json: serde_json::Value = read_json(&dir.path().join("config.json")).unwrap();
    assert_eq!(config_json["split_sizes"]["val"], 0);
    assert!(summary.curve.points.iter().all(|p| p.val_accuracy.is_none() && p.selection_accuracy == p.test_accuracy));
    check_selection(dir.path(), &prepared, false);
}
