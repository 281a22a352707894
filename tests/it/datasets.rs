//! `selmask train` on every dataset of the paper, with the paper's network
//! for it, on small generated files in each dataset's real format and real
//! item shape: the whole path from files to two trained epochs.

use std::path::Path;
use std::process::Command;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use selmask::data::augment::AugmentConfig;
use selmask::data::sampling::Sampling;
use selmask::data::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels, cifar10, galaxy10, remote, ships, svhn};
use selmask::training::SelectOn;
use selmask::training::progress::{Progress, Verbosity};
use selmask::training::run::PreparedData;
use serde_json::Value;

/// `n` seeded random u8 items of `shape`, labels cycling through `classes`.
fn random_set(shape: [usize; 3], n: usize, classes: u16, seed: u64) -> ImageSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len: usize = shape.iter().product();
    let pixels = (0..n * len).map(|_| rng.random_range(0..=255u8)).collect();
    ImageSet { shape, pixels: Pixels::U8(pixels), labels: (0..n).map(|i| i as u16 % classes).collect() }
}

/// Trains two epochs of a static mask of `granularity` with the dataset's
/// default network and returns `config.json` and `summary.json` of the run.
fn train_two_epochs(dataset: &str, data_dir: &Path, granularity: &str, extra: &[&str]) -> (Value, Value) {
    train_two_epochs_in(tempfile::tempdir().unwrap().path(), dataset, data_dir, granularity, extra)
}

/// [`train_two_epochs`] into the runs directory `exp`.
fn train_two_epochs_in(exp: &Path, dataset: &str, data_dir: &Path, granularity: &str, extra: &[&str]) -> (Value, Value) {
    let mut args = vec![
        "train", "--dataset", dataset, "--data-dir", data_dir.to_str().unwrap(), "--mask-type", "static",
        "--any-granularity", granularity, "--n-epochs", "2", "--n-repeats", "1", "--batch-size", "8",
        "--eval-batch-size", "8", "--val-split", "0.2", "--name", "two", "--quiet",
        "--exp-dir", exp.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_selmask")).args(&args).output().unwrap();
    assert!(out.status.success(), "{dataset}: {}", String::from_utf8_lossy(&out.stderr));
    let run = exp.join(dataset).join("static/two/run_0");
    let read = |f: &str| -> Value { serde_json::from_slice(&std::fs::read(run.join(f)).unwrap()).unwrap() };
    let (config, summary) = (read("config.json"), read("summary.json"));
    assert_eq!(summary["epochs_completed"], 2, "{dataset}");
    let acc = summary["last"]["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{dataset}: accuracy {acc}");
    (config, summary)
}

/// Side of the probe images of [`pipeline_probe`].
const SIDE: usize = 16;

/// The probe image: every item of the probe set is this (asymmetric) image.
fn probe_image() -> Vec<f32> {
    (0..SIDE * SIDE).map(|i| ((i * 37) % 251) as f32 / 255.0).collect()
}

fn hflip(img: &[f32]) -> Vec<f32> {
    (0..SIDE * SIDE).map(|i| img[(i / SIDE) * SIDE + SIDE - 1 - i % SIDE]).collect()
}

fn vflip(img: &[f32]) -> Vec<f32> {
    (0..SIDE * SIDE).map(|i| img[(SIDE - 1 - i / SIDE) * SIDE + i % SIDE]).collect()
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

/// Trains 3 epochs on a probe set with the augmentation and sampling that
/// the CLI run recorded in `config` (its `config.json`), watching the
/// batches the training loop hands to each step: every item is the same
/// image, 90 of class 0 and 10 of class 1. Checks that what the loop sees
/// is what the settings say; returns them.
fn pipeline_probe(config: &Value) -> (AugmentConfig, Sampling) {
    let augment: AugmentConfig = serde_json::from_value(config["config"]["augment"].clone()).unwrap();
    let sampling: Sampling = serde_json::from_value(config["config"]["sampling"].clone()).unwrap();
    let image: Vec<u8> = probe_image().iter().map(|v| (v * 255.0).round() as u8).collect();
    let set = |labels: Vec<u16>| ImageSet {
        shape: [1, SIDE, SIDE],
        pixels: Pixels::U8(labels.iter().flat_map(|_| image.clone()).collect()),
        labels,
    };
    let train_labels: Vec<u16> = (0..100).map(|i| u16::from(i % 10 == 9)).collect();
    let info = DatasetInfo { name: DatasetName::Synthetic, shape: [1, SIDE, SIDE], n_classes: 2, mean: vec![0.0], std: vec![1.0] };
    let dataset = Dataset { info: info.clone(), train: set(train_labels.clone()), test: set(vec![0, 1, 0, 1]) };
    let mut train = crate::fixtures::config_for(&info, 3);
    (train.augment, train.sampling, train.val_split, train.select_on, train.batch_size) = (augment, sampling, 0.0, SelectOn::Test, 16);
    let device = crate::fixtures::device();
    let prepared = PreparedData::new(&dataset, train.val_split, train.seed, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<(usize, Vec<f32>, u16)> = Vec::new();
    let progress = Progress::new(Verbosity::Quiet, "probe");
    train
        .fit_observed(&prepared, dir.path(), 0, &device, &progress, &mut |epoch, batch| {
            for (item, &label) in batch.values.chunks(SIDE * SIDE).zip(&batch.labels) {
                seen.push((epoch, item.to_vec(), label));
            }
        })
        .unwrap();

    // Sampling: per epoch, every item once (shuffled), or as many items as
    // the smallest class has, drawn towards the rare class.
    for epoch in 1..=3 {
        let labels: Vec<u16> = seen.iter().filter(|s| s.0 == epoch).map(|s| s.2).collect();
        let rare = labels.iter().filter(|&&l| l == 1).count();
        match sampling {
            Sampling::Shuffle => assert_eq!((labels.len(), rare), (100, 10), "epoch {epoch}"),
            Sampling::ClassBalanced => assert_eq!(labels.len(), 10, "epoch {epoch}: the smallest class's size"),
        }
    }
    if sampling == Sampling::ClassBalanced {
        let rare = seen.iter().filter(|s| s.2 == 1).count();
        assert!(rare * 10 >= seen.len() * 3, "{rare} of {} drawn items of the rare class (10% of the set)", seen.len());
    }

    // Augmentation: the items as stored, or mostly changed; with flips
    // alone, exactly the flips the settings allow, each of them seen.
    let original = probe_image();
    let unchanged = seen.iter().filter(|s| same(&s.1, &original)).count();
    if augment.is_identity() {
        assert_eq!(unchanged, seen.len(), "no augmentation: the items as stored");
    } else {
        assert!(unchanged * 2 < seen.len(), "{unchanged} of {} items unchanged under {augment:?}", seen.len());
    }
    if augment.crop_pad == 0 && augment.shift_crop == 0 && !augment.is_identity() {
        let mut variants = vec![original.clone()];
        if augment.hflip {
            variants.push(hflip(&original));
        }
        if augment.vflip {
            variants.push(vflip(&original));
        }
        if augment.hflip && augment.vflip {
            variants.push(vflip(&hflip(&original)));
        }
        let counts: Vec<usize> = variants.iter().map(|v| seen.iter().filter(|s| same(&s.1, v)).count()).collect();
        assert_eq!(counts.iter().sum::<usize>(), seen.len(), "every item is a flip of the stored one: {counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "every allowed flip occurs: {counts:?}");
    }
    (augment, sampling)
}

/// Ship image folders of random `side`×`side` PNGs: `train` and `test`
/// give the images per class (no_ship, ship).
fn ship_folders(side: u32, train: [usize; 2], test: [usize; 2], seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (split, count) in [("train", train), ("test", test)] {
        for (class, n) in ["no_ship", "ship"].into_iter().zip(count) {
            for i in 0..n {
                let img = image::RgbImage::from_fn(side, side, |_, _| image::Rgb([rng.random(), rng.random(), rng.random()]));
                ships::write_fixture(dir.path(), split, class, &format!("{i}.png"), &img).unwrap();
            }
        }
    }
    dir
}

fn network_kind(config: &Value) -> &str {
    config["config"]["network"]["kind"].as_str().unwrap()
}

#[test]
fn cifar10_trains_resnet20_with_flip_and_crop() {
    let dir = tempfile::tempdir().unwrap();
    cifar10::write_fixture(dir.path(), &random_set([3, 32, 32], 40, 10, 1), &random_set([3, 32, 32], 10, 10, 2)).unwrap();
    let (config, _) = train_two_epochs("cifar10", dir.path(), "pixel", &[]);
    assert_eq!(network_kind(&config), "resnet20");
    assert_eq!(config["config"]["augment"]["crop_pad"], 4);
    assert_eq!(config["dataset"]["shape"], serde_json::json!([3, 32, 32]));
    // The flip and crop reach the batches.
    let (augment, sampling) = pipeline_probe(&config);
    assert!(augment.hflip && augment.crop_pad == 4 && sampling == Sampling::Shuffle);
}

#[test]
fn svhn_trains_resnet20() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (random_set([3, 32, 32], 40, 10, 3), random_set([3, 32, 32], 10, 10, 4));
    svhn::write_fixture(dir.path(), &train, &test, Default::default()).unwrap();
    let (config, _) = train_two_epochs("svhn", dir.path(), "subCXLIVdrant", &[]);
    assert_eq!(network_kind(&config), "resnet20");
    let (augment, _) = pipeline_probe(&config);
    assert!(augment.hflip && augment.crop_pad == 4);
}

#[test]
fn galaxy10_trains_the_strided_resnet20_with_shift_crop() {
    let dir = tempfile::tempdir().unwrap();
    galaxy10::write_fixture(dir.path(), &random_set([3, 69, 69], 50, 10, 5), Default::default()).unwrap();
    let (config, _) = train_two_epochs("galaxy10", dir.path(), "pixel", &[]);
    assert_eq!(network_kind(&config), "resnet20");
    assert_eq!(config["config"]["network"]["first_stride"], 2);
    assert_eq!(config["config"]["augment"]["shift_crop"], 8);
    let (augment, _) = pipeline_probe(&config);
    assert!(augment.hflip && augment.vflip && augment.shift_crop == 8);
}

#[test]
fn remote_trains_the_all_convolutional_net_on_36_bands_with_a_channel_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let n = 40;
    let pixels = (0..n * 36 * 35 * 35).map(|_| rng.random_range(0.0f32..200.0)).collect();
    let set = ImageSet { shape: [36, 35, 35], pixels: Pixels::F32(pixels), labels: (0..n).map(|i| i as u16 % 13).collect() };
    remote::write_fixture(dir.path(), &set, Default::default()).unwrap();
    let (config, _) = train_two_epochs("remote", dir.path(), "channel", &[]);
    assert_eq!(network_kind(&config), "allconv");
    assert_eq!(config["config"]["mask"]["granularity"], "channel");
    // Both flips, no crop: each batch item is one of the four flips.
    let (augment, _) = pipeline_probe(&config);
    assert!(augment.hflip && augment.vflip && augment.crop_pad == 0 && augment.shift_crop == 0);
}

#[test]
fn ships_trains_squeezenet_on_resized_images_with_class_balanced_sampling() {
    // Imbalanced as the real data: 6 without ships, 2 with, in training.
    let dir = ship_folders(768, [6, 2], [2, 2], 7);
    let (config, _) = train_two_epochs("ships", dir.path(), "CXLIVdrant", &[]);
    assert_eq!(network_kind(&config), "squeezenet1_1");
    assert_eq!(config["config"]["sampling"], "class_balanced");
    assert_eq!(config["dataset"]["shape"], serde_json::json!([3, 384, 384]));
    // Class-balanced epochs and the ships' flips and crop reach the batches.
    let (augment, sampling) = pipeline_probe(&config);
    assert!(sampling == Sampling::ClassBalanced && augment.crop_pad == 10);
}

#[test]
fn cifar10_xor_pipeline_from_the_command_line_reports_version_fractions() {
    // The paper's static_pipeline_cifar10 flags, on generated CIFAR files.
    let dir = tempfile::tempdir().unwrap();
    cifar10::write_fixture(dir.path(), &random_set([3, 32, 32], 40, 10, 8), &random_set([3, 32, 32], 10, 10, 9)).unwrap();
    let (config, summary) = train_two_epochs(
        "cifar10",
        dir.path(),
        "subpixel",
        &["--quality-levels", "90", "70", "50", "30", "10", "--any-init-mean", "0.25"],
    );
    assert_eq!(config["config"]["xor"]["versions"]["quality_levels"], serde_json::json!([90, 70, 50, 30, 10]));
    assert_eq!(network_kind(&config), "resnet20");
    let fractions = summary["last"]["version_fractions"][0]["fractions"].as_array().unwrap();
    assert_eq!(fractions.len(), 6, "the original and 5 JPEG levels");
    let total: f64 = fractions.iter().map(|f| f.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "{fractions:?}");
}

#[test]
fn report_draws_an_xor_pipeline_as_the_client_receives_it() {
    let dir = tempfile::tempdir().unwrap();
    cifar10::write_fixture(dir.path(), &random_set([3, 32, 32], 40, 10, 8), &random_set([3, 32, 32], 10, 10, 9)).unwrap();
    let exp = tempfile::tempdir().unwrap();
    train_two_epochs_in(exp.path(), "cifar10", dir.path(), "pixel", &["--quality-levels", "50", "10", "--network", "mlp"]);
    let out = exp.path().join("report");
    let status = Command::new(env!("CARGO_BIN_EXE_selmask"))
        .args(["report", exp.path().to_str().unwrap(), "--out", out.to_str().unwrap(), "--mask-examples-q", "1"])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let svg = std::fs::read_dir(out.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_masks.svg"))
        .expect("a mask figure of the xor run");
    let text = std::fs::read_to_string(&svg).unwrap();
    // Eight examples, each with its share of bytes (versions weigh 1, 0.5, 0.1).
    assert_eq!(text.matches(", bytes 0.").count() + text.matches(", bytes 1.00").count(), 8, "{}", svg.display());
    let md = std::fs::read_to_string(out.join("cifar10.md")).unwrap();
    assert!(md.contains("## Example masks") && md.contains("chosen version"), "{md}");
}

#[test]
fn max_per_class_bounds_what_is_read_of_the_ships_and_is_refused_elsewhere() {
    let dir = ship_folders(384, [5, 3], [3, 3], 10);
    let exp = tempfile::tempdir().unwrap();
    let run = |dataset: &str, cap: &str| {
        Command::new(env!("CARGO_BIN_EXE_selmask"))
            .args([
                "train", "--dataset", dataset, "--data-dir", dir.path().to_str().unwrap(), "--mask-type", "static",
                "--any-granularity", "CXLIVdrant", "--n-epochs", "1", "--n-repeats", "1", "--batch-size", "4",
                "--val-split", "0.25", "--name", "cap", "--quiet", "--max-per-class", cap,
                "--exp-dir", exp.path().to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = run("ships", "2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: Value = serde_json::from_slice(&std::fs::read(exp.path().join("ships/static/cap/run_0/config.json")).unwrap()).unwrap();
    // 2 per class in each split: 4 training items (3 train + 1 validation), 4 test items.
    let sizes = &config["split_sizes"];
    assert_eq!((sizes["train"].as_u64(), sizes["val"].as_u64(), sizes["test"].as_u64()), (Some(3), Some(1), Some(4)));

    let out = run("ships", "0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("max-per-class") && err.contains("at least 1"), "{err}");
    let out = run("cifar10", "2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("max-per-class") && err.contains("only applies to ships"), "{err}");
}

#[test]
fn streamed_ships_give_the_batches_of_loaded_ones_and_name_a_file_that_breaks() {
    use selmask::data::batch::TensorSplit;
    use selmask::data::versions::VersionsConfig;
    use selmask::training::run::PreparedData;
    let dir = ship_folders(32, [5, 3], [2, 2], 11);
    let options = ships::ShipsOptions { size: 16, max_per_class: None };
    let device = crate::fixtures::device();
    let listed = ships::list(dir.path(), options).unwrap();
    assert_eq!((listed.train.len(), listed.test.len()), (8, 4));
    let loaded = ships::load(dir.path(), options).unwrap();
    assert_eq!(listed.train.read_all().unwrap(), loaded.train);

    // Same split, same items, same values, with and without versions.
    let versions = VersionsConfig { quality_levels: vec![50], thumbs: vec![[8, 8]] };
    for v in [None, Some(&versions)] {
        let streamed = PreparedData::from_listed(listed.clone(), 0.25, 3, v, &device).unwrap();
        let held = PreparedData::from_dataset(loaded.clone(), 0.25, 3, v, &device).unwrap();
        let splits = |p: &PreparedData| -> Vec<(usize, Vec<u16>)> {
            [Some(&p.train), p.val.as_ref(), Some(&p.test)].into_iter().flatten().map(|s: &TensorSplit| (s.len, s.classes.clone())).collect()
        };
        assert_eq!(splits(&streamed), splits(&held));
        assert_eq!(streamed.train.shape(), held.train.shape());
        let values = |s: &TensorSplit| -> Vec<f32> {
            s.in_order(4, &[5, 0, 2, 2, 1]).flat_map(|b| b.unwrap().images.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()).collect()
        };
        assert_eq!(values(&streamed.train), values(&held.train), "versions: {v:?}");
    }

    // A file that stops decoding after the listing fails the batch that
    // reads it, naming the file; the others still read.
    let streamed = PreparedData::from_listed(listed.clone(), 0.0, 3, None, &device).unwrap();
    let broken = &listed.train.paths[2];
    std::fs::write(broken, b"not a png any more").unwrap();
    let err = streamed.train.in_order(1, &[2]).next().unwrap().unwrap_err().to_string();
    assert!(err.contains(&broken.display().to_string()), "{err}");
    assert!(streamed.train.in_order(1, &[1]).next().unwrap().is_ok());
}

#[test]
fn ships_train_streamed_from_the_command_line_and_stream_is_refused_elsewhere() {
    let dir = ship_folders(384, [3, 2], [1, 1], 12);
    let (config, _) = train_two_epochs("ships", dir.path(), "CXLIVdrant", &["--stream"]);
    let sizes = &config["split_sizes"];
    assert_eq!((sizes["train"].as_u64(), sizes["val"].as_u64(), sizes["test"].as_u64()), (Some(4), Some(1), Some(2)));
    // A wrong-sized image is found from its header before training starts.
    let odd = dir.path().join("test/ship/odd.png");
    image::RgbImage::new(384, 200).save(&odd).unwrap();
    let exp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_selmask"))
        .args(["train", "--dataset", "ships", "--data-dir", dir.path().to_str().unwrap(), "--mask-type", "static"])
        .args(["--stream", "--n-epochs", "1", "--exp-dir", exp.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("odd.png") && err.contains("384x200"), "{err}");
    assert!(!exp.path().join("ships").exists(), "nothing is written before the data are checked");
    let out = Command::new(env!("CARGO_BIN_EXE_selmask"))
        .args(["train", "--dataset", "cifar10", "--data-dir", dir.path().to_str().unwrap(), "--mask-type", "static", "--stream"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("stream") && err.contains("only applies to ships"), "{err}");
}
