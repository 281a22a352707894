//! Dynamic masks follow information that moves; baselines produce curves.

use selmask::data::synthetic::{SyntheticConfig, SyntheticData};
use selmask::masks::dynamic::DynamicMaskConfig;
use selmask::masks::dynamic::models::MaskModelKind;
use selmask_wire::granularity::Granularity;
use selmask::masks::scheduled::{CellScheduleConfig, RemovalOrder};
use selmask::masks::{Mask, MaskConfig};
use selmask::training::checkpoint::SelectionModel;
use selmask::training::budget::TargetQConfig;
use selmask::training::progress::{Progress, Verbosity};
use selmask::training::run::{PreparedData, RunSummary};
use selmask::training::{MaskType, TrainConfig};

use crate::fixtures::{device, small_synthetic, synthetic_config};

fn quiet() -> Progress {
    Progress::new(Verbosity::Quiet, "test")
}

/// 12x12 inputs in a 3x3 grid of 4x4 cells; each item's signal sits in one
/// random cell, which is the brightest cell of a 3x3 thumbnail.
fn moving() -> SyntheticData {
    SyntheticConfig {
        shape: [1, 12, 12],
        granularity: "block:4".parse().unwrap(),
        n_informative: 1,
        n_classes: 2,
        n_train: 4000,
        n_test: 600,
        seed: 7,
        moving: true,
    }
    .generate()
}

fn moving_config(data: &SyntheticData, mask_type: MaskType) -> TrainConfig {
    let mut config = synthetic_config(data, 30);
    let granularity: Granularity = "block:4".parse().unwrap();
    config.mask_type = mask_type;
    config.lambda.factor = 1.5;
    config.lambda.patience = 1;
    if mask_type == MaskType::Dynamic {
        // A mask model moves faster than a static mask's logits: a smaller
        // step keeps it from dropping everything at once (no gradient then).
        config.optim.lr_mask = 0.002;
        // And λ starts low (the paper starts dynamic masks at 0.0005).
        config.lambda.init = 0.05;
        config.mask = MaskConfig::Dynamic(DynamicMaskConfig {
            input_shape: data.dataset.info.shape,
            granularity,
            model: MaskModelKind::Linear,
            server_hw: Some([3, 3]),
            learn_static: false,
            learn_dynamic: true,
            init_mean: 3.0,
            init_std: 0.01,
            input_drop_upscaling: false,
        });
    } else if let MaskConfig::Static(m) = &mut config.mask {
        m.granularity = granularity;
    }
    config
}

#[test]
fn dynamic_mask_follows_the_moving_signal_and_beats_static() {
    let data = moving();
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    // As the paper: both masks start from a network trained on full inputs.
    let mut dynamic = moving_config(&data, MaskType::Dynamic);
    // λ is driven to one cell in nine (Q* 0.12) rather than raised on
    // plateaus: with the plateau rule alone, a run whose Q falls slowly
    // keeps λ low and may not reach one cell within its epochs (1 seed in
    // 10 here; float summation order under parallel tests acts like a new
    // seed). With the budget, seeds 1 to 10 all passed, the worst at 84%
    // of selected cells inside the signal and 0.26 above static.
    dynamic.target_q = Some(TargetQConfig::new(0.12));
    dynamic.n_epochs = 40;
    let prepared = PreparedData::new(&data.dataset, dynamic.val_split, dynamic.seed, &device).unwrap();
    let warmup = dir.path().join("synthetic.warmup");
    let mut plain = moving_config(&data, MaskType::Static);
    plain.n_epochs = 10;
    selmask::training::pretrain::pretrain(&plain, &prepared, &dir.path().join("pre"), &warmup, &device, &quiet()).unwrap();
    dynamic.warmup = Some(warmup.clone());
    let summary: RunSummary = dynamic.fit(&prepared, &dir.path().join("dynamic"), 0, &device, &quiet()).unwrap();
    let metrics: Vec<selmask::training::metrics::EpochMetrics> =
        selmask::training::metrics::read_jsonl(&dir.path().join("dynamic/metrics.jsonl")).unwrap();
    let trace: Vec<(f64, f64, f64)> = metrics.iter().map(|m| (m.q, m.lambda, m.test_accuracy)).collect();
    // One cell of nine is 0.11: the [0.10, 0.15) checkpoint.
    let point = summary.curve.best_within(0.15).unwrap_or_else(|| panic!("dynamic reaches Q <= 0.15: {trace:?}")).clone();
    let model = SelectionModel::load(&dir.path().join("dynamic").join(&point.checkpoint), &device).unwrap();
    let Some(Mask::Dynamic(mask)) = &model.mask else { panic!("a dynamic mask") };
    let hard: Vec<f32> = mask.hard(prepared.test.ordered(prepared.test.len).next().unwrap().unwrap().images, 1.0).into_data().convert::<f32>().try_into_vec().unwrap();
    let test_cells = &data.item_cells[data.dataset.train.len()..];
    let (mut inside, mut selected) = (0usize, 0usize);
    for (item, cells) in hard.chunks(9).enumerate() {
        for (cell, &v) in cells.iter().enumerate() {
            if v == 1.0 {
                selected += 1;
                inside += usize::from(cell == test_cells[item]);
            }
        }
    }
    assert!(selected > 0);
    assert!(inside * 10 >= selected * 8, "{inside} of {selected} selected cells hold the signal: {trace:?}");

    let mut stat = moving_config(&data, MaskType::Static);
    stat.warmup = Some(warmup);
    let static_summary = stat.fit(&prepared, &dir.path().join("static"), 0, &device, &quiet()).unwrap();
    let static_best = static_summary.curve.best_within(point.q.max(0.15)).map_or(0.0, |p| p.test_accuracy);
    assert!(
        point.test_accuracy > static_best + 0.2,
        "dynamic {} at Q {} against static {static_best}",
        point.test_accuracy,
        point.q
    );
    // Per-input Q varies and is reported.
    assert!(metrics.iter().all(|m| m.q_percentiles.is_some()));
}

#[test]
fn random_and_given_baselines_walk_q_down_linearly() {
    let data = small_synthetic(8);
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    let prepared = PreparedData::new(&data.dataset, 0.1, 3, &device).unwrap();
    let n_cells = 100;
    // Importance: the informative cells first, then the rest by index.
    let importance: Vec<f32> = (0..n_cells).map(|c| if data.informative.contains(&c) { 1.0 } else { 0.0 }).collect();
    for (name, order) in [
        ("random", RemovalOrder::Random { seed: 1 }),
        ("given", RemovalOrder::Given { importance, source: "oracle.npy".into() }),
    ] {
        let mut config = synthetic_config(&data, 6);
        config.mask_type = if name == "random" { MaskType::Random } else { MaskType::Given };
        // 43 iterations per epoch: 2 cells every 5 iterations = about 17 cells per epoch.
        config.schedule = Some(CellScheduleConfig { order, num_del: 2, change_iter: 5 });
        let summary = config.fit(&prepared, &dir.path().join(name), 0, &device, &quiet()).unwrap();
        let metrics: Vec<selmask::training::metrics::EpochMetrics> =
            selmask::training::metrics::read_jsonl(&dir.path().join(name).join("metrics.jsonl")).unwrap();
        let qs: Vec<f64> = metrics.iter().map(|m| m.q).collect();
        assert!(qs.windows(2).all(|w| w[1] < w[0]), "{name}: Q must fall every epoch: {qs:?}");
        assert!(qs.last().unwrap() < &0.1, "{name}: {qs:?}");
        assert!(summary.curve.points.len() >= 5, "{name}: a whole curve");
        if name == "given" {
            // The oracle keeps the informative cells to the end.
            let at_low = summary.curve.best_within(0.15).unwrap();
            assert!(at_low.test_accuracy > 0.8, "given at Q {}: {}", at_low.q, at_low.test_accuracy);
        }
    }
}
