//! Same outputs across refactors: a fixed-seed synthetic train + export +
//! serve + infer through the real binary, against the figures the binary
//! gave before the re-layout of issue 13 (commit 38e7c16, one thread).
//!
//! The random baseline is used because its mask follows a seeded schedule,
//! not the floating-point training: Q per epoch, the exported mask and
//! selection (byte for byte) and every wire byte are exact on any CPU. The
//! accuracy depends on the CPU's arithmetic (AVX2 and AVX-512 GEMMs round
//! differently), so it is held to a band, and the client's to the
//! trainer's exactly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use sha2::{Digest, Sha256};

use crate::fixtures::{read_json, selmask};

/// Q of epochs 1 and 2 (evaluation) and the training batches' mean Q.
const GOLDEN_Q: [(f64, f64); 2] = [(0.7959183673469314, 0.9098243990609812), (0.5918367346938733, 0.6915045131084531)];
/// Test accuracy of both epochs, as measured before.
const GOLDEN_ACCURACY: f64 = 0.272;
/// SHA-256 of the exported mask and selection.
const GOLDEN_MASK_SHA: &str = "767ca7a36da42b981070cea364f6389989ca300a9c227aed3fa7dbc90dbf2503";
const GOLDEN_SELECTED_SHA: &str = "8a7c8f24a7328805854cbef889eac962990bdc321cbc69d2057b62d1f75f0141";

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_fixed_seed_train_export_serve_and_infer_gives_the_figures_of_before_the_re_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("runs");
    ok(selmask(&[
        "train", "--dataset", "synthetic", "--mask-type", "random", "--random-num-del", "40", "--random-change-iter", "10",
        "--n-repeats", "1", "--n-epochs", "2", "--seed", "3", "--exp-dir", exp.to_str().unwrap(), "--name", "golden",
        "--quiet", "--tensorboard", "0",
    ])
    .output()
    .unwrap());
    let run = exp.join("synthetic/random/golden/run_0");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for (row, (q, train_q)) in rows.iter().zip(GOLDEN_Q) {
        assert!((row["q"].as_f64().unwrap() - q).abs() < 1e-12, "{row}");
        assert!((row["train_q"].as_f64().unwrap() - train_q).abs() < 1e-9, "{row}");
        assert!((row["test_accuracy"].as_f64().unwrap() - GOLDEN_ACCURACY).abs() <= 0.05, "{row}");
    }

    let art = tmp.path().join("art");
    ok(selmask(&["export", run.to_str().unwrap(), "--q", "0.59", "--out", art.to_str().unwrap()]).output().unwrap());
    assert_eq!(sha256(&art.join("mask.npy")), GOLDEN_MASK_SHA);
    assert_eq!(sha256(&art.join("selected.npy")), GOLDEN_SELECTED_SHA);

    let mut server = selmask(&["serve", "--dataset", "synthetic", "--artifact", art.to_str().unwrap(), "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_string);
    let infer = url.as_deref().map(|url| selmask(&["infer", "--server", url, "--artifact", art.to_str().unwrap(), "--json"]).output());
    server.kill().unwrap();
    server.wait().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(infer.unwrap_or_else(|| panic!("no address in {line:?}")).unwrap())).unwrap();
    for (key, want) in [("items", 1000), ("payload_bytes", 464_080), ("bytes_received", 464_080), ("http_header_bytes", 592), ("requests", 4), ("bytes_full", 784_000)] {
        assert_eq!(report[key].as_u64(), Some(want), "{key}: {report}");
    }
    assert!((report["q"].as_f64().unwrap() - 0.5918367346938775).abs() < 1e-12, "{report}");
    assert_eq!(report["accuracy"], report["trainer_test_accuracy"], "{report}");
    let summary = read_json(&run.join("summary.json"));
    assert_eq!(summary["epochs_completed"], 2);
}
