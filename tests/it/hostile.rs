//! Hostile input to files, flags, runs and artifacts: nothing selmask did not
//! write is ever replaced, checkpoints and records agree or nothing is
//! exported, damage is detected on every load, lost store chunks are errors,
//! crafted headers are refused before any allocation, and degenerate runs
//! are refused before training. Each test fails on the code before its fix
//! (noted per test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fixtures::write_mnist;

fn selmask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selmask")).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a clean refusal: exit code 1 (an error, not a panic's 101 or a
/// signal) with every `needles` in the message.
fn refused(out: &Output, needles: &[&str]) -> String {
    let msg = stderr(out);
    assert_eq!(out.status.code(), Some(1), "expected a clean error, got {:?}: {msg}", out.status);
    for n in needles {
        assert!(msg.contains(n), "missing '{n}' in: {msg}");
    }
    msg
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// Tiny Fashion-MNIST files (`n_train`, `n_test` items) in a fresh directory.
fn mnist_dir(n_train: usize, n_test: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), n_train, n_test, false);
    dir
}

/// Trains a static pixel mask on `data` into `<exp>/fashion_mnist/static/<name>/run_0`.
fn train(data: &Path, exp: &Path, name: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train", "--dataset", "fashion_mnist", "--data-dir", data.to_str().unwrap(), "--mask-type", "static",
        "--any-granularity", "pixel", "--n-repeats", "1", "--eval-batch-size", "64", "--name", name, "--quiet",
        "--exp-dir", exp.to_str().unwrap(),
    ];
    // Defaults that `extra` may replace.
    for (flag, value) in [("--n-epochs", "2"), ("--batch-size", "32"), ("--val-split", "0.25")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    selmask(&args)
}

fn run_dir(exp: &Path, name: &str) -> PathBuf {
    exp.join("fashion_mnist/static").join(name).join("run_0")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn export(run: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["export", run.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    selmask(&args)
}

/// Class 1. Before: `export --overwrite` and `ingest --overwrite` removed
/// whatever was at `--out` (a file, a folder of the user's), and `train
/// --overwrite` removed a run directory whatever else it held.
#[test]
fn overwrite_replaces_only_what_selmask_wrote() {
    let data = mnist_dir(120, 40);
    let exp = tempfile::tempdir().unwrap();
    ok(&train(data.path(), exp.path(), "o", &[]));
    let run = run_dir(exp.path(), "o");
    let work = tempfile::tempdir().unwrap();

    // A regular file of the user's.
    let file = work.path().join("thesis.tex");
    std::fs::write(&file, "years of work").unwrap();
    refused(&export(&run, &file, &["--max-q", "1", "--overwrite"]), &["thesis.tex", "is a file", "left untouched"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "years of work");

    // A folder of the user's.
    let folder = work.path().join("photos");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("cat.jpg"), "meow").unwrap();
    refused(&export(&run, &folder, &["--max-q", "1", "--overwrite"]), &["photos", "manifest.json", "left untouched"]);
    assert_eq!(std::fs::read_to_string(folder.join("cat.jpg")).unwrap(), "meow");

    // An artifact: refused without --overwrite, replaced with it.
    let artifact = work.path().join("artifact");
    ok(&export(&run, &artifact, &["--max-q", "1"]));
    refused(&export(&run, &artifact, &["--max-q", "1"]), &["already exists", "--overwrite"]);
    ok(&export(&run, &artifact, &["--max-q", "1", "--overwrite"]));
    // ...but not once the user put a file of theirs inside.
    std::fs::write(artifact.join("notes.txt"), "mine").unwrap();
    refused(&export(&run, &artifact, &["--max-q", "1", "--overwrite"]), &["'notes.txt'", "did not write"]);
    assert_eq!(std::fs::read_to_string(artifact.join("notes.txt")).unwrap(), "mine");

    // Ingest: a foreign folder is refused, its own store replaced.
    let ingest = |out: &Path, overwrite: bool| {
        let mut args = vec![
            "ingest", "--dataset", "fashion_mnist", "--data-dir", data.path().to_str().unwrap(), "--out",
            out.to_str().unwrap(), "--items-per-chunk", "16",
        ];
        if overwrite {
            args.push("--overwrite");
        }
        selmask(&args)
    };
    refused(&ingest(&folder, true), &["photos", "zarr.json", "left untouched"]);
    assert_eq!(std::fs::read_to_string(folder.join("cat.jpg")).unwrap(), "meow");
    let store = work.path().join("store");
    ok(&ingest(&store, false));
    ok(&ingest(&store, true));
    std::fs::write(store.join("README"), "mine").unwrap();
    refused(&ingest(&store, true), &["'README'"]);
    assert!(store.join("README").is_file());

    // Train: a run directory holding a file of the user's is not removed.
    std::fs::write(run.join("analysis.ipynb"), "mine").unwrap();
    refused(&train(data.path(), exp.path(), "o", &["--overwrite"]), &["'analysis.ipynb'", "left untouched"]);
    assert!(run.join("analysis.ipynb").is_file() && run.join("summary.json").is_file());
    std::fs::remove_file(run.join("analysis.ipynb")).unwrap();
    ok(&train(data.path(), exp.path(), "o", &["--overwrite"]));

    // Nothing else appeared next to the outputs (no temporary leftovers).
    let mut names: Vec<String> =
        std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["artifact", "photos", "store", "thesis.tex"]);
}

/// Class 2. Before: checkpoints were named by their interval's lower bound
/// to 4 decimals, so intervals narrower than 1e-4 shared a file, and export
/// wrote the manifest from summary.json whatever epoch the file held.
#[test]
fn checkpoints_never_disagree_with_the_records_they_are_exported_under() {
    let data = mnist_dir(160, 40);
    let exp = tempfile::tempdir().unwrap();
    // Intervals of 1e-6: every epoch is its own interval.
    ok(&train(
        data.path(),
        exp.path(),
        "narrow",
        &["--n-epochs", "3", "--checkpoint-qloss-interval", "0.000001", "--lambda-init", "5", "--lr", "0.1", "--any-init-mean", "0.2"],
    ));
    let run = run_dir(exp.path(), "narrow");
    let summary = read_json(&run.join("summary.json"));
    let points = summary["curve"]["points"].as_array().unwrap();
    let files: Vec<&str> = points.iter().map(|p| p["checkpoint"].as_str().unwrap()).collect();
    let mut unique = files.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), files.len(), "two intervals share a file: {files:?}");
    // Exactly the recorded files are on disk (superseded ones removed).
    let on_disk = std::fs::read_dir(run.join("checkpoints")).unwrap().count();
    assert_eq!(on_disk, files.len());

    // Each point exports with its own epoch, Q and accuracy.
    let work = tempfile::tempdir().unwrap();
    for (k, p) in points.iter().enumerate() {
        let out = work.path().join(format!("a{k}"));
        let q = p["q"].as_f64().unwrap().to_string();
        ok(&export(&run, &out, &["--q", &q]));
        let manifest = read_json(&out.join("manifest.json"));
        assert_eq!(manifest["epoch"], p["epoch"], "point {k}");
        assert_eq!(manifest["accuracy"]["test"], p["test_accuracy"], "point {k}");
        assert_eq!(manifest["source"]["checkpoint"], p["checkpoint"], "point {k}");
    }

    // A checkpoint file that holds another epoch than its record: refused.
    if points.len() >= 2 {
        let (a, b) = (run.join(files[0]), run.join(files[1]));
        std::fs::copy(&b, &a).unwrap();
        let q = points[0]["q"].as_f64().unwrap().to_string();
        refused(&export(&run, &work.path().join("wrong"), &["--q", &q]), &["summary.json records epoch", "nothing was exported"]);
        assert!(!work.path().join("wrong").exists());
    } else {
        panic!("expected several curve points, got {points:?}");
    }
}

/// Flips one bit in the middle of `path`.
fn flip_bit(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

/// Class 3. Before: a flipped bit inside a checkpoint's weights loaded
/// fine, and export wrote it with fresh SHA-256s.
#[test]
fn a_flipped_bit_in_a_checkpoint_or_warm_up_fails_every_load() {
    let data = mnist_dir(120, 40);
    let exp = tempfile::tempdir().unwrap();
    ok(&train(data.path(), exp.path(), "c", &[]));
    let run = run_dir(exp.path(), "c");
    let summary = read_json(&run.join("summary.json"));
    let ckpt = run.join(summary["curve"]["points"][0]["checkpoint"].as_str().unwrap());
    flip_bit(&ckpt);
    let out = tempfile::tempdir().unwrap();
    refused(&export(&run, &out.path().join("a"), &["--max-q", "1"]), &["checksum mismatch", "corrupt checkpoint"]);
    assert!(!out.path().join("a").exists());
    // Fine-tuning from it.
    refused(&train(data.path(), exp.path(), "ft", &["--init-checkpoint", ckpt.to_str().unwrap()]), &["checksum mismatch"]);

    // A warm-up file.
    let warm = tempfile::tempdir().unwrap();
    ok(&selmask(&[
        "pretrain", "--dataset", "fashion_mnist", "--data-dir", data.path().to_str().unwrap(), "--n-epochs", "1",
        "--warmup-dir", warm.path().to_str().unwrap(), "--exp-dir", exp.path().to_str().unwrap(), "--quiet",
    ]));
    let file = warm.path().join("fashion_mnist.warmup");
    flip_bit(&file);
    refused(
        &train(data.path(), exp.path(), "w", &["--use-warmup-net", "1", "--warmup-dir", warm.path().to_str().unwrap()]),
        &["checksum mismatch", "fashion_mnist.warmup"],
    );
}

/// Class 4. Before: a chunk deleted after ingest was served as zeros.
#[test]
fn a_missing_store_chunk_is_an_error_not_zeros() {
    use selmask::data::{ImageSet, Pixels};
    use selmask_wire::granularity::Granularity;
    use selmask_wire::transfer::store::{IngestConfig, StoreSplit, ingest};

    let dir = tempfile::tempdir().unwrap();
    // Item 0 is all zeros: its chunks must be stored all the same.
    let mut pixels = vec![0u8; 4 * 16];
    for (i, p) in pixels.iter_mut().enumerate().skip(16) {
        *p = (i % 251) as u8 + 1;
    }
    let set = ImageSet { shape: [1, 4, 4], pixels: Pixels::U8(pixels), labels: vec![0, 1, 2, 3] };
    let out = dir.path().join("store");
    let cfg = IngestConfig { items_per_chunk: 1, zstd_level: None, overwrite: false };
    let report = ingest(&out, "synthetic", &[("test", &set)], Granularity::Pixel, &cfg).unwrap();
    assert_eq!(report.chunks_written, report.chunks_total, "all-zero chunks are stored too");
    let split = StoreSplit::open(&out, "test").unwrap();
    let (items, _) = split.read_items(&[0, 1], Some(&[5])).unwrap();
    let Pixels::U8(v) = &items.pixels else { panic!() };
    assert_eq!((v[5], v[16 + 5]), (0, 22));

    // Delete the chunk of item 1, pixel 5 (chunk key c/1/0/1/1 of [1, 1, 1, 1] chunks).
    let chunk = out.join("test/images/c/1/0/1/1");
    assert!(chunk.is_file(), "chunk layout changed: {}", chunk.display());
    std::fs::remove_file(&chunk).unwrap();
    let split = StoreSplit::open(&out, "test").unwrap();
    let err = split.read_items(&[0, 1], Some(&[5])).unwrap_err().to_string();
    assert!(err.contains("chunk [1, 0, 1, 1]") && err.contains("missing"), "{err}");
    // Cells not selected are not read, so they do not fail.
    assert!(split.read_items(&[1], Some(&[6])).is_ok());

    // Deleted labels are an error too.
    std::fs::remove_file(out.join("test/labels/c/0")).unwrap();
    let err = StoreSplit::open(&out, "test").unwrap_err().to_string();
    assert!(err.contains("labels chunk [0]") && err.contains("missing"), "{err}");
}

/// Class 7. Before: an IDX header whose dimensions multiply to 2^64 (0
/// modulo 2^64) passed as holding no data and failed later on a giant
/// shape; an NPY header claiming 2^40 items allocated before reading.
#[test]
fn crafted_headers_are_refused_before_allocating() {
    use selmask::data::idx;

    // IDX: [2^22, 2^21, 2^21] images in a file of header only.
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), 4, 4, false);
    let mut header = vec![0, 0, 8, 3];
    for d in [1u32 << 22, 1 << 21, 1 << 21] {
        header.extend_from_slice(&d.to_be_bytes());
    }
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), &header).unwrap();
    let err = idx::read_images(&dir.path().join("train-images-idx3-ubyte")).unwrap_err().to_string();
    assert!(err.contains("18446744073709551615"), "{err}");
    let exp = tempfile::tempdir().unwrap();
    refused(&train(dir.path(), exp.path(), "h", &[]), &["train-images-idx3-ubyte", "idx"]);

    // The same header gzipped: refused from the header, before inflating.
    let gz = tempfile::tempdir().unwrap();
    write_mnist(gz.path(), 4, 4, true);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &header).unwrap();
    std::fs::write(gz.path().join("train-images-idx3-ubyte.gz"), enc.finish().unwrap()).unwrap();
    refused(&train(gz.path(), exp.path(), "hz", &[]), &["train-images-idx3-ubyte.gz"]);

    // NPY (remote sensing): 2^40 items of 35x35x36 declared, none stored.
    let remote = tempfile::tempdir().unwrap();
    std::fs::write(remote.path().join("X_train.npy"), npy_bytes("|u1", "(1099511627776, 35, 35, 36)", &[])).unwrap();
    std::fs::write(remote.path().join("y_train.npy"), npy_bytes("|u1", "(1,)", &[0])).unwrap();
    let out = selmask(&[
        "train", "--dataset", "remote", "--data-dir", remote.path().to_str().unwrap(), "--mask-type", "static",
        "--n-epochs", "1", "--n-repeats", "1", "--quiet", "--exp-dir", exp.path().to_str().unwrap(),
    ]);
    refused(&out, &["X_train.npy", "1099511627776 items"]);

    // A store whose zarr.json claims items of 2^60 values.
    let store_dir = tempfile::tempdir().unwrap();
    let data = mnist_dir(8, 8);
    let store = store_dir.path().join("s");
    ok(&selmask(&[
        "ingest", "--dataset", "fashion_mnist", "--data-dir", data.path().to_str().unwrap(), "--out",
        store.to_str().unwrap(), "--items-per-chunk", "4",
    ]));
    let meta_path = store.join("zarr.json");
    let mut meta = read_json(&meta_path);
    meta["attributes"]["selmask"]["shape"] = serde_json::json!([1u64 << 20, 1u64 << 20, 1u64 << 20]);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let err = selmask_wire::transfer::store::StoreSplit::open(&store, "test").unwrap_err().to_string();
    assert!(err.contains("item shape") && err.contains("zarr.json"), "{err}");

    // An importance map whose shape needs more bytes than the file has.
    let imp = npy_bytes("<f4", "(4294967296, 4294967296)", &[]);
    let imp_path = store_dir.path().join("imp.npy");
    std::fs::write(&imp_path, &imp).unwrap();
    let layout = selmask_wire::granularity::Granularity::Pixel.layout([1, 28, 28]).unwrap();
    let err = selmask::masks::importance::read_cell_importance(&imp_path, &layout).unwrap_err().to_string();
    assert!(err.contains("needs more than the file's"), "{err}");
}

/// An NPY file (version 1) with a hand-written header: any shape may be
/// declared, whatever `data` holds.
fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Class 9. Before: a run whose validation split rounded to no items
/// trained and wrote a summary with no usable point; a finished run re-run
/// under its name with other flags was silently skipped; a Fortran-order
/// importance map was read transposed; `export --q 1` did not find the
/// checkpoint at Q = 1.
#[test]
fn degenerate_runs_are_refused_and_edge_values_are_found() {
    let exp = tempfile::tempdir().unwrap();
    // 6 training items, 5% validation: no validation item (refused by the split).
    let tiny = mnist_dir(6, 10);
    refused(&train(tiny.path(), exp.path(), "noval", &["--val-split", "0.05"]), &["val-split", "leaves no validation item out of 6"]);
    // No training item (selecting on test, no validation split).
    let no_train = mnist_dir(0, 10);
    let out = train(no_train.path(), exp.path(), "notrain", &["--val-split", "0", "--select-on", "test"]);
    refused(&out, &["the training split is empty", "nothing was trained"]);
    assert!(!run_dir(exp.path(), "notrain").exists(), "nothing is written for a refused run");
    // No test item.
    let no_test = mnist_dir(40, 0);
    refused(&train(no_test.path(), exp.path(), "notest", &[]), &["the test split is empty"]);
    assert!(!run_dir(exp.path(), "notest").exists());

    // A finished run, re-run under its name: skipped with the same flags,
    // refused (naming the flags) with others.
    let data = mnist_dir(120, 40);
    // Lambda 0 and a tiny mask learning rate: the mask stays all on (Q = 1).
    let same = ["--lambda-init", "0", "--lr", "0.000001"];
    ok(&train(data.path(), exp.path(), "again", &same));
    let out = train(data.path(), exp.path(), "again", &same);
    ok(&out);
    assert!(stderr(&out).contains("same settings, skipped"), "{}", stderr(&out));
    let out = train(data.path(), exp.path(), "again", &["--lambda-init", "0", "--lr", "0.000001", "--n-epochs", "3", "--batch-size", "16"]);
    refused(&out, &["finished run with other settings", "n_epochs: 2 -> 3", "batch_size: 32 -> 16"]);

    // export --q at the checkpoint's own Q, 1 exactly.
    let run = run_dir(exp.path(), "again");
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["curve"]["points"][0]["q"], 1.0, "{summary}");
    let work = tempfile::tempdir().unwrap();
    ok(&export(&run, &work.path().join("q1"), &["--q", "1"]));

    // A Fortran-order importance map reads as the same map in C order.
    use npyz::WriterBuilder;
    let layout = selmask_wire::granularity::Granularity::Pixel.layout([1, 3, 4]).unwrap();
    let c_order: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let write = |name: &str, order: npyz::Order, values: &[f32]| {
        let mut bytes = Vec::new();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&[1, 3, 4])
            .order(order)
            .writer(&mut bytes)
            .begin_nd()
            .unwrap();
        w.extend(values.iter().copied()).unwrap();
        w.finish().unwrap();
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    // Element (0, h, w) = 4h + w; Fortran order stores h fastest.
    let fortran: Vec<f32> = (0..4).flat_map(|w| (0..3).map(move |h| (4 * h + w) as f32)).collect();
    let c_path = write("c.npy", npyz::Order::C, &c_order);
    let f_path = write("f.npy", npyz::Order::Fortran, &fortran);
    let read = selmask::masks::importance::read_cell_importance;
    assert_eq!(read(&c_path, &layout).unwrap(), c_order);
    assert_eq!(read(&f_path, &layout).unwrap(), c_order);
}

/// Typed flags are checked by the parser, before any file is read: a typo
/// in `--mask-type` used to be reported only after the dataset had loaded
/// (or, without data, as a missing data directory).
#[test]
fn a_bad_typed_flag_is_reported_before_the_data_directory() {
    let nowhere = "/nonexistent/selmask-data";
    for (flag, value, needle) in [
        ("--mask-type", "bogus", "static, dynamic, random, given"),
        ("--any-granularity", "hexagon", "unknown granularity 'hexagon'"),
        ("--dynamic-mask", "resnet", "unknown mask model"),
        ("--select-on", "train", "must be val or test"),
        ("--network", "vgg", "squeezenet1_1"),
        ("--augment", "mixup", "paper"),
    ] {
        let mut args = vec!["train", "--dataset", "fashion_mnist", "--data-dir", nowhere];
        if flag != "--mask-type" {
            args.extend(["--mask-type", "static"]);
        }
        args.extend([flag, value]);
        let out = selmask(&args);
        let msg = stderr(&out);
        // clap's usage error: exit code 2, flag and value named.
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {msg}");
        assert!(msg.contains(flag) && msg.contains(value) && msg.contains(needle), "{flag} {value}: {msg}");
        assert!(!msg.contains(nowhere), "the flag, not the data, is reported: {msg}");
    }
    let out = selmask(&["ingest", "--dataset", "fashion-mnist-x", "--data-dir", nowhere, "--out", "never"]);
    assert!(stderr(&out).contains("unknown dataset 'fashion-mnist-x'") && !stderr(&out).contains(nowhere), "{}", stderr(&out));
    assert!(!Path::new("never").exists());
}

/// Class 8 (files and runs; the server's and client's flags are tested
/// with them). Before: `ingest --items-per-chunk` of 2^40 passed to the
/// writer (and a wrong --split was reported only after loading the data),
/// `report --mask-examples-q 7` was accepted, intervals of 1e-12 merged.
#[test]
fn out_of_range_flags_are_named_before_any_data_is_read() {
    let nowhere = "/nonexistent/selmask-data";
    let out = tempfile::tempdir().unwrap();
    let store = out.path().join("s");
    let ingest = |extra: &[&str]| {
        let mut args = vec!["ingest", "--dataset", "fashion_mnist", "--data-dir", nowhere, "--out", store.to_str().unwrap()];
        args.extend_from_slice(extra);
        selmask(&args)
    };
    refused(&ingest(&["--items-per-chunk", "0"]), &["items-per-chunk = 0"]);
    refused(&ingest(&["--items-per-chunk", "1099511627776"]), &["items-per-chunk = 1099511627776", "65536"]);
    refused(&ingest(&["--zstd-level", "99"]), &["zstd-level = 99"]);
    refused(&ingest(&["--split", "validation"]), &["split = validation", "test or train"]);
    refused(&ingest(&["--split", "test", "--split", "test"]), &["given twice"]);
    for out in [ingest(&["--items-per-chunk", "0"]), ingest(&["--split", "validation"])] {
        assert!(!stderr(&out).contains(nowhere), "the flag, not the data, is reported: {}", stderr(&out));
    }
    assert!(!store.exists());

    let runs = out.path().to_str().unwrap();
    refused(&selmask(&["report", runs, "--mask-examples-q", "7"]), &["--mask-examples-q 7"]);
    refused(&selmask(&["report", runs, "--mask-examples-q", "NaN"]), &["--mask-examples-q NaN"]);
    let data = mnist_dir(20, 10);
    refused(
        &train(data.path(), out.path(), "w", &["--checkpoint-qloss-interval", "1e-12"]),
        &["checkpoint-qloss-interval", "[1e-6, 1]"],
    );
    // A negative number is the flag's value (named by its range check), not
    // an unknown flag `-1`.
    for (flag, named) in [
        ("--lr-net", "lr-net = -1"),
        ("--lr", "lr = -1"),
        ("--lambda-init", "lambda-init = -1"),
        ("--lambda-factor", "lambda-factor = -1"),
        ("--target-q", "target-q = -1"),
    ] {
        refused(&train(data.path(), out.path(), "w", &[flag, "-1"]), &[named]);
    }
}
