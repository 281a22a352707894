//! Long runs survive being killed: `--resume` continues from the last
//! finished epoch and gives the rows of an uninterrupted run, a resume with
//! other flags is refused naming them, and `--slurm-friendly` processes
//! started together share an experiment without collisions.

use std::path::Path;
use std::process::{Child, Output};
use std::time::Duration;

use burn::prelude::*;
use selmask::training::checkpoint::SelectionModel;
use serde_json::Value;

use crate::fixtures::{kill_when, read_json, selmask};

/// The synthetic run of these tests: 6,000 MNIST-shaped items, an MLP,
/// batch 32 (about a second per epoch with one thread).
fn args<'a>(exp: &'a str, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train", "--dataset", "synthetic", "--network", "mlp", "--mask-type", "static", "--any-granularity", "pixel",
        "--batch-size", "32", "--lr", "0.05", "--exp-dir", exp, "--name", name, "--quiet",
    ];
    // Defaults that `extra` may replace.
    for (flag, value) in [("--n-epochs", "5"), ("--n-repeats", "1"), ("--lambda-init", "2")] {
        if !extra.contains(&flag) {
            a.extend([flag, value]);
        }
    }
    a.extend_from_slice(extra);
    a
}

/// The binary with one compute thread (bit-identical float sums).
fn run(args: &[&str]) -> Output {
    selmask(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn rows(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("train_seconds");
            v
        })
        .collect()
}

/// Kills `child` with SIGKILL once `run_dir`'s summary records `epochs`
/// finished epochs (bounded: 5 minutes); returns the epochs it recorded.
/// Kills `child` once `run_dir`'s summary records `epochs` finished epochs.
fn kill_after(child: Child, run_dir: &Path, epochs: u64) -> u64 {
    kill_when(child, run_dir, &format!("epoch {epochs} was recorded"), Duration::from_millis(10), |done| done >= epochs)
}

#[test]
fn a_killed_run_resumes_to_the_rows_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let whole = run(&args(exp, "whole", &[]));
    assert!(whole.status.success(), "{}", stderr(&whole));

    let child = selmask(&args(exp, "killed", &[])).spawn().unwrap();
    let killed_dir = dir.path().join("synthetic/static/killed/run_0");
    let done = kill_after(child, &killed_dir, 2);
    assert!(done < 5, "killed too late to test anything (after epoch {done})");

    // Without --resume the unfinished run is not touched.
    let out = run(&args(exp, "killed", &[]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --resume"), "{}", stderr(&out));

    // Other flags: refused, naming them.
    let out = run(&args(exp, "killed", &["--resume", "--lambda-init", "3"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(msg.contains("cannot resume") && msg.contains("lambda.init: 2.0 -> 3.0"), "{msg}");

    let out = run(&args(exp, "killed", &["--resume"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));

    let whole_dir = dir.path().join("synthetic/static/whole/run_0");
    let (a, b) = (rows(&whole_dir), rows(&killed_dir));
    assert_eq!(a.len(), 5);
    assert_eq!(b.len(), 5, "one row per epoch, none repeated: {b:?}");
    for e in 2..5 {
        assert_eq!(a[e], b[e], "epoch {}", e + 1);
    }
    let curve = |d: &Path| read_json(&d.join("summary.json"))["curve"].clone();
    assert_eq!(curve(&whole_dir), curve(&killed_dir));

    // Every checkpoint holds the epoch its record names, and no other file is left.
    let summary = read_json(&killed_dir.join("summary.json"));
    let points = summary["curve"]["points"].as_array().unwrap();
    for p in points {
        let model = SelectionModel::load(&killed_dir.join(p["checkpoint"].as_str().unwrap()), &Device::flex()).unwrap();
        assert_eq!(model.meta.point.epoch as u64, p["epoch"].as_u64().unwrap());
    }
    assert_eq!(std::fs::read_dir(killed_dir.join("checkpoints")).unwrap().count(), points.len());

    // A finished run resumes to nothing: skipped.
    let out = run(&args(exp, "killed", &["--resume"]));
    assert!(out.status.success() && stderr(&out).contains("skipped"), "{}", stderr(&out));
}

#[test]
fn processes_started_together_with_slurm_friendly_each_train_one_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().to_str().unwrap();
    let extra = ["--slurm-friendly", "--n-repeats", "3", "--n-epochs", "1"];
    let children: Vec<Child> = (0..3).map(|_| selmask(&args(exp, "shared", &extra)).spawn().unwrap()).collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let experiment = dir.path().join("synthetic/static/shared");
    for i in 0..3 {
        let summary = read_json(&experiment.join(format!("run_{i}/summary.json")));
        assert_eq!(summary["epochs_completed"], 1, "run_{i}");
        let config = read_json(&experiment.join(format!("run_{i}/config.json")));
        assert_eq!(config["repeat"], i, "run_{i}");
    }
    // Each process trained exactly one run: three distinct ones in all.
    let trained: usize = outputs.iter().map(|o| String::from_utf8_lossy(&o.stdout).matches("accuracy vs Q").count()).sum();
    assert_eq!(trained, 3, "{:?}", outputs.iter().map(stderr).collect::<Vec<_>>());
    assert_eq!(std::fs::read_dir(&experiment).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count(), 3);

    // A fourth process finds nothing to do.
    let out = run(&args(exp, "shared", &extra));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"), "{}", String::from_utf8_lossy(&out.stdout));
}
