//! Deployment end to end: a trained checkpoint is exported, a real server on
//! 127.0.0.1:0 sends only the selected values, and the client's predictions
//! equal the trainer's, item by item, with the bytes on the wire bounded by
//! Q.

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use selmask::data::batch::TensorSplit;
use selmask::data::synthetic::SyntheticData;
use selmask::deploy::from_checkpoint::{ExportOptions, PointChoice, export_run};
use selmask::deploy::model::ClientModel;
use selmask_wire::artifact::{Artifact, ArtifactMask, read_artifact};
use selmask::masks::MaskConfig;
use selmask::training::checkpoint::SelectionModel;
use selmask::training::evaluate::evaluate_with_predictions;
use selmask::training::progress::{Progress, Verbosity};
use selmask::training::run::{PreparedData, RunSummary};
use selmask::training::TrainConfig;
use selmask_wire::transfer::client::{ClientConfig, Fetched, fetch_split_blocking};
use selmask_wire::transfer::server::{ServerConfig, ServerState};

use crate::fixtures::{RunningServer, device, small_synthetic, synthetic_config};

/// Trains `config` briefly and exports its best checkpoint with Q <= `max_q`.
fn train_and_export(config: &TrainConfig, data: &SyntheticData, dir: &Path, max_q: f64) -> (Artifact, RunSummary) {
    let device = device();
    let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
    let run = dir.join("run_0");
    let summary = config.fit(&prepared, &run, 0, &device, &Progress::new(Verbosity::Quiet, "test")).unwrap();
    let out = dir.join("artifact");
    let opts = ExportOptions { run_dir: run, choice: PointChoice::Budget(max_q), out: out.clone(), overwrite: false, dtype: None };
    export_run(&opts).unwrap();
    (read_artifact(&out).unwrap(), summary)
}

/// The trainer's own test predictions for the exported checkpoint.
fn trainer_predictions(artifact: &Artifact, data: &SyntheticData, batch: usize) -> Vec<i64> {
    let src = &artifact.manifest.source;
    let model = SelectionModel::load(&Path::new(&src.run_dir).join(&src.checkpoint), &device()).unwrap();
    let test = TensorSplit::new(&data.dataset.test, &data.dataset.info, &device());
    let net = model.net.valid();
    let mask = model.mask.map(|m| m.valid());
    evaluate_with_predictions(&net, mask.as_ref(), model.meta.tau, &test, batch).unwrap().1
}

fn serve_and_fetch(artifact: &Artifact, data: &SyntheticData, zstd: bool) -> Fetched {
    let mut state = ServerState::new(ServerConfig::default());
    state.add_dataset("synthetic", [("test".to_string(), data.dataset.test.clone())]).unwrap();
    fetch_from(state, artifact, zstd)
}

fn fetch_from(mut state: ServerState, artifact: &Artifact, zstd: bool) -> Fetched {
    selmask::deploy::model::add_served_artifact(&mut state, "art", artifact).unwrap();
    let server = RunningServer::start(state);
    let config = ClientConfig { base_url: server.url(), batch_size: 128, zstd, progress: false, ..ClientConfig::default() };
    fetch_split_blocking(config, "art", artifact, "test", None).unwrap()
}

#[test]
fn static_artifact_served_and_inferred_matches_the_trainer() {
    let data = small_synthetic(5);
    let mut config = synthetic_config(&data, 4);
    // Upscaling on: the client must apply the same factor as the trainer.
    if let MaskConfig::Static(m) = &mut config.mask {
        m.input_drop_upscaling = true;
    }
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = train_and_export(&config, &data, dir.path(), 1.0);
    let m = &artifact.manifest;
    assert!(m.mask.q < 0.9 && m.mask.input_drop_upscaling > 1.0, "{:?}", m.mask);
    let ArtifactMask::Static { selected, .. } = &artifact.mask else { panic!("static artifact") };

    let fetched = serve_and_fetch(&artifact, &data, false);
    let client = ClientModel::new(Arc::new(artifact.clone())).unwrap();
    let got = client.predict(&fetched.batch, config.eval_batch_size).unwrap();
    let want = trainer_predictions(&artifact, &data, config.eval_batch_size);
    assert_eq!(got, want, "client and trainer disagree");
    let correct = got.iter().zip(&fetched.batch.labels).filter(|&(&p, &l)| p == l as i64).count();
    assert_eq!(Some(correct as f64 / got.len() as f64), m.accuracy.test);

    // Only the selected values crossed the wire: Q of the raw bytes plus the
    // documented framing.
    let s = &fetched.stats;
    assert_eq!(s.full_bytes, (data.dataset.test.len() * 100) as u64);
    assert_eq!(s.payload_bytes, (20 * s.requests + s.items * selected.len()) as u64);
    let bound = 1.01 * m.mask.bytes_fraction * s.full_bytes as f64 + (20 * s.requests) as f64;
    assert!((s.wire_bytes as f64) <= bound, "{} wire bytes > {bound}", s.wire_bytes);

    let zipped = serve_and_fetch(&artifact, &data, true);
    assert!(zipped.stats.wire_bytes < s.wire_bytes, "zstd {} vs {}", zipped.stats.wire_bytes, s.wire_bytes);
    assert_eq!(client.predict(&zipped.batch, config.eval_batch_size).unwrap(), want);
}

#[test]
fn dynamic_artifact_served_and_inferred_matches_the_trainer() {
    use selmask::masks::dynamic::DynamicMaskConfig;
    let data = small_synthetic(6);
    let mut config = synthetic_config(&data, 3);
    config.mask_type = selmask::training::MaskType::Dynamic;
    config.optim.lr_mask = 0.002;
    config.lambda.init = 0.05;
    config.mask = MaskConfig::Dynamic(DynamicMaskConfig {
        input_drop_upscaling: true,
        ..crate::fixtures::linear_dynamic(&data, "block:2".parse().unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = train_and_export(&config, &data, dir.path(), 1.0);
    assert!(matches!(artifact.mask, ArtifactMask::Dynamic { .. }));

    let fetched = serve_and_fetch(&artifact, &data, false);
    let client = ClientModel::new(Arc::new(artifact.clone())).unwrap();
    let got = client.predict(&fetched.batch, config.eval_batch_size).unwrap();
    let want = trainer_predictions(&artifact, &data, config.eval_batch_size);
    assert_eq!(got, want, "client and trainer disagree");
    // The masks the server computed select what the trainer's masks did: Q
    // of the sent cells equals the checkpoint's recorded Q.
    let masks = fetched.batch.cell_masks.as_ref().unwrap();
    let q = masks.iter().filter(|&&b| b).count() as f64 / masks.len() as f64;
    assert!((q - artifact.manifest.mask.q).abs() < 1e-9, "served Q {q} vs recorded {}", artifact.manifest.mask.q);
}

#[test]
fn export_errors_name_the_problem_and_keep_the_old_artifact() {
    let data = small_synthetic(7);
    let config = synthetic_config(&data, 1);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = train_and_export(&config, &data, dir.path(), 1.0);
    let before = std::fs::read(artifact.dir.join("manifest.json")).unwrap();
    let run = dir.path().join("run_0");
    // Exists already.
    let opts = ExportOptions {
        run_dir: run.clone(),
        choice: PointChoice::Budget(1.0),
        out: artifact.dir.clone(),
        overwrite: false,
        dtype: None,
    };
    let err = export_run(&opts).unwrap_err().to_string();
    assert!(err.contains("artifact") && err.contains("exists"), "{err}");
    // No checkpoint in that interval / within that budget.
    let err = export_run(&ExportOptions { choice: PointChoice::Budget(0.0), ..opts.clone() }).unwrap_err().to_string();
    assert!(err.contains("max-q") && err.contains("Q intervals"), "{err}");
    let err = export_run(&ExportOptions { choice: PointChoice::Interval(0.001), ..opts.clone() }).unwrap_err().to_string();
    assert!(err.starts_with("invalid q = 0.001:") && err.contains("has no checkpoint there"), "{err}");
    // Not a run directory.
    let err = export_run(&ExportOptions { run_dir: dir.path().join("nope"), ..opts }).unwrap_err().to_string();
    assert!(err.contains("summary.json"), "{err}");
    assert_eq!(std::fs::read(artifact.dir.join("manifest.json")).unwrap(), before);
}

#[test]
fn served_from_a_zarr_store_reads_only_the_selected_chunks() {
    use selmask_wire::transfer::store::{IngestConfig, ingest};
    let data = small_synthetic(8);
    let config = synthetic_config(&data, 4);
    let dir = tempfile::tempdir().unwrap();
    let (artifact, _) = train_and_export(&config, &data, dir.path(), 1.0);
    let ArtifactMask::Static { selected, .. } = &artifact.mask else { panic!("static artifact") };
    let store = dir.path().join("synthetic.zarr");
    let ipc = 64;
    let granularity = selmask_wire::granularity::Granularity::Pixel;
    let cfg = IngestConfig { items_per_chunk: ipc, zstd_level: None, overwrite: false };
    ingest(&store, "synthetic", &[("test", &data.dataset.test)], granularity, &cfg).unwrap();
    let mut state = ServerState::new(ServerConfig::default());
    assert_eq!(state.add_store(&store).unwrap(), "synthetic");
    let fetched = fetch_from(state, &artifact, false);

    let client = ClientModel::new(Arc::new(artifact.clone())).unwrap();
    let got = client.predict(&fetched.batch, config.eval_batch_size).unwrap();
    assert_eq!(got, trainer_predictions(&artifact, &data, config.eval_batch_size));
    // One chunk (64 items x 1 pixel) per selected pixel and item-chunk row;
    // the synthetic noise is never all zero, so every chunk exists.
    let rows = data.dataset.test.len().div_ceil(ipc);
    assert_eq!(fetched.stats.storage_bytes, Some((selected.len() * ipc * rows) as u64));
    assert_eq!(fetched.stats.payload_bytes, (20 * fetched.stats.requests + fetched.stats.items * selected.len()) as u64);
}

/// Every mask model g: builds, lowers the loss in two steps (and moves g),
/// trains, exports, and the server's masks reach the client as the
/// trainer's, differing between inputs, with Q < 1.
#[test]
fn every_mask_model_trains_exports_and_serves_the_trainers_per_input_masks() {
    use burn::nn::loss::CrossEntropyLossConfig;
    use selmask::models::weights::module_tensors;
    use selmask::masks::dynamic::DynamicMaskConfig;
    use selmask::masks::dynamic::models::MaskModelKind;
    use selmask::masks::Mask;
    use selmask::training::step::{Learner, StepParams};
    // 16x16 inputs (the U-Net needs sides in multiples of 8), a 4x4 grid of
    // 4x4 cells, the signal in one random cell per item.
    let data = selmask::data::synthetic::SyntheticConfig {
        shape: [1, 16, 16],
        granularity: "block:4".parse().unwrap(),
        n_informative: 1,
        n_classes: 2,
        n_train: 640,
        n_test: 96,
        seed: 17,
        moving: true,
    }
    .generate();
    let device = device();
    for kind in MaskModelKind::ALL {
        let mut config = synthetic_config(&data, 2);
        config.mask_type = selmask::training::MaskType::Dynamic;
        config.optim.lr_mask = 0.01;
        config.lambda.init = 0.05;
        // A learned bias starting at 0, where g's input-dependent part
        // decides the masks from the start.
        config.mask = MaskConfig::Dynamic(DynamicMaskConfig {
            input_shape: data.dataset.info.shape,
            granularity: "block:4".parse().unwrap(),
            model: kind,
            server_hw: None,
            learn_static: true,
            learn_dynamic: true,
            init_mean: 0.0,
            init_std: 1e-6,
            input_drop_upscaling: false,
        });

        // Steps on one batch: the loss falls and g moves.
        device.seed(17);
        let mask = config.selection_mask().unwrap().init(&device).unwrap();
        let Mask::Dynamic(dynamic) = &mask else { panic!("{kind}: a dynamic mask") };
        let g_before = module_tensors(&dynamic.model);
        let learner = Learner {
            net: config.network.init(&device),
            net_optim: config.optim.net(),
            mask: Some(mask),
            mask_optim: config.optim.mask(),
            schedule: None,
        };
        let prepared = PreparedData::new(&data.dataset, config.val_split, config.seed, &device).unwrap();
        let batch = prepared.train.ordered(64).next().unwrap().unwrap();
        let ce = CrossEntropyLossConfig::new().init(&device);
        let params = StepParams { lambda: 0.05, tau: 1.0, lr_net: config.optim.lr_net, lr_mask: config.optim.lr_mask, freeze_mask: false };
        // Five steps, not two: a single Adam step from a random start raised
        // smallconvatt's loss about once in five suite runs.
        let (mut learner, first) = learner.step(batch.clone(), &ce, params);
        let mut last = first;
        for _ in 0..4 {
            let (next, losses) = learner.step(batch.clone(), &ce, params);
            (learner, last) = (next, losses);
        }
        assert!(last.loss < first.loss, "{kind}: loss {} then {}", first.loss, last.loss);
        let Some(Mask::Dynamic(dynamic)) = &learner.mask else { unreachable!() };
        assert_ne!(module_tensors(&dynamic.model), g_before, "{kind}: g did not move");

        // Trained two epochs. g's output is then input-dependent but still
        // small next to its per-cell level (the convolutional models' trunks
        // end in ReLUs), so each cell's learned bias is set to cut g at a
        // wide gap between its test-input values: about half the inputs keep
        // each cell, which a constant or all-on mask at the server or the
        // client could not reproduce.
        let run = tempfile::tempdir().unwrap();
        let summary = config.fit(&prepared, &run.path().join("run_0"), 0, &device, &Progress::new(Verbosity::Quiet, "test")).unwrap();
        let point = summary.curve.best_within(1.0).unwrap().clone();
        let ckpt = run.path().join("run_0").join(&point.checkpoint);
        let model = SelectionModel::load(&ckpt, &device).unwrap();
        let Some(Mask::Dynamic(mut mask)) = model.mask.map(|m| m.valid()) else { panic!("{kind}: a dynamic mask") };
        let test = TensorSplit::new(&data.dataset.test, &data.dataset.info, &device);
        let images = test.ordered(test.len).next().unwrap().unwrap().images.inner();
        let n_cells = 16;
        let g: Vec<f32> = mask.model.forward(mask.server_view(images.clone())).into_data().convert::<f32>().try_into_vec().unwrap();
        let bias: Vec<f32> = (0..n_cells)
            .map(|cell| {
                let mut v: Vec<f32> = g.iter().skip(cell).step_by(n_cells).copied().collect();
                v.sort_by(f32::total_cmp);
                let (lo, hi) = (v.len() * 3 / 10, v.len() * 7 / 10);
                let i = (lo..hi).max_by(|&a, &b| (v[a + 1] - v[a]).total_cmp(&(v[b + 1] - v[b]))).unwrap();
                -(v[i] + v[i + 1]) / 2.0
            })
            .collect();
        let inner = images.device();
        mask.bias = burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(bias, [1, 4, 4]), &inner));
        let net = model.net.valid();
        selmask::training::checkpoint::save(&ckpt, &model.meta, &net, Some(&Mask::Dynamic(mask.clone()))).unwrap();
        let out = run.path().join("artifact");
        let opts = ExportOptions { run_dir: run.path().join("run_0"), choice: PointChoice::Budget(1.0), out: out.clone(), overwrite: false, dtype: None };
        export_run(&opts).unwrap();
        let artifact = read_artifact(&out).unwrap();
        assert!(matches!(artifact.mask, ArtifactMask::Dynamic { .. }), "{kind}");
        let trainer: Vec<f32> = mask.hard(images, model.meta.tau).into_data().convert::<f32>().try_into_vec().unwrap();
        assert_eq!(trainer.len(), test.len * n_cells);

        let fetched = serve_and_fetch(&artifact, &data, false);
        let served = fetched.batch.cell_masks.as_ref().unwrap();
        assert_eq!(served.len(), fetched.batch.indices.len() * n_cells, "{kind}");
        for (k, &item) in fetched.batch.indices.iter().enumerate() {
            let want: Vec<bool> = trainer[item as usize * n_cells..][..n_cells].iter().map(|&v| v == 1.0).collect();
            assert_eq!(served[k * n_cells..][..n_cells], want[..], "{kind}: item {item}");
        }
        let distinct: std::collections::BTreeSet<&[bool]> = served.chunks(n_cells).collect();
        let q = served.iter().filter(|&&b| b).count() as f64 / served.len() as f64;
        assert!(distinct.len() > 1, "{kind}: every input got the same mask");
        assert!(q < 1.0, "{kind}: Q {q}");
        let client = ClientModel::new(Arc::new(artifact.clone())).unwrap();
        let got = client.predict(&fetched.batch, config.eval_batch_size).unwrap();
        assert_eq!(got, trainer_predictions(&artifact, &data, config.eval_batch_size), "{kind}: client and trainer disagree");
    }
}
