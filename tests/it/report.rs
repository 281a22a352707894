//! End-to-end tests: a synthetic runs directory with known numbers, the
//! report written from it, and its tables checked against numbers computed
//! here, independently of the crate, from the same metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use selmask::report::plots::{MaskExample, MaskFigure, mask_figure};
use selmask::error::{Error, WireError};
use selmask::report::{ReportOptions, write_report};
use serde_json::json;

/// One epoch of a synthetic run.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    epoch: usize,
    q: f64,
    bytes: f64,
    val: f64,
    test: f64,
    lambda: f64,
}

/// Static: three runs with different Q paths (run 2 skips [0.10, 0.15)
/// and visits [0.20, 0.25); two epochs of each run lie in [0, 0.05)).
fn static_runs() -> Vec<Vec<Epoch>> {
    let qs = [
        [1.0, 0.62, 0.33, 0.18, 0.12, 0.07, 0.048, 0.03],
        [1.0, 0.60, 0.31, 0.17, 0.11, 0.08, 0.046, 0.041],
        [1.0, 0.58, 0.29, 0.21, 0.09, 0.06, 0.044, 0.02],
    ];
    qs.iter()
        .enumerate()
        .map(|(r, q)| {
            (0..8)
                .map(|e| {
                    let val = 0.95 - 0.015 * e as f64 + 0.004 * r as f64 + ((e * 7 + r * 3) % 5) as f64 * 0.002;
                    Epoch {
                        epoch: e + 1,
                        q: q[e],
                        // Uneven cells: the bytes fraction differs from Q.
                        bytes: q[e] * 0.98,
                        val,
                        test: val - 0.006 + 0.001 * ((e + r) % 3) as f64,
                        lambda: 0.5 * 1.5f64.powi(e as i32),
                    }
                })
                .collect()
        })
        .collect()
}

/// Random: Q falls linearly and never gets below 0.16; λ is unused (0).
fn random_runs(n_epochs: usize) -> Vec<Vec<Epoch>> {
    (0..3)
        .map(|r| {
            (0..n_epochs)
                .map(|e| {
                    let q = 1.0 - 0.12 * e as f64 - 0.003 * r as f64;
                    let val = 0.94 - 0.02 * e as f64 + 0.003 * r as f64;
                    Epoch { epoch: e + 1, q, bytes: q, val, test: val - 0.004, lambda: 0.0 }
                })
                .collect()
        })
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn metrics_line(e: &Epoch) -> String {
    json!({
        "epoch": e.epoch, "train_loss": 0.3, "task_loss": 0.25, "train_q": e.q, "q": e.q,
        "bytes_fraction": e.bytes, "lambda": e.lambda, "tau": 1.0, "val_loss": 0.3,
        "val_accuracy": e.val, "test_loss": 0.31, "test_accuracy": e.test, "seconds": 1.5, "train_seconds": 1.2
    })
    .to_string()
}

/// The curve `selmask` would have written, computed here: the best epoch by
/// validation accuracy (earliest among equals) per Q interval of width 0.05.
fn curve_points(epochs: &[Epoch]) -> BTreeMap<usize, Epoch> {
    let mut best: BTreeMap<usize, Epoch> = BTreeMap::new();
    for e in epochs {
        let bucket = ((e.q / 0.05 + 1e-9).floor() as usize).min(19);
        if best.get(&bucket).is_none_or(|b| e.val > b.val) {
            best.insert(bucket, *e);
        }
    }
    best
}

fn interval(bucket: usize) -> [f64; 2] {
    let r = |v: f64| (v * 1e9).round() / 1e9;
    [r(bucket as f64 * 0.05), r(((bucket + 1) as f64 * 0.05).min(1.0))]
}

/// Writes `run_<repeat>` of `mask_type` with `epochs` of `planned`.
fn write_run(runs: &Path, mask_type: &str, repeat: usize, epochs: &[Epoch], planned: usize, with_summary: bool) -> PathBuf {
    let dir = runs.join("mnist").join(mask_type).join("exp").join(format!("run_{repeat}"));
    let config = json!({
        "selmask_version": "0.1.0",
        "config": {
            "dataset": "mnist",
            "network": {"kind": "lenet5", "channels": 1, "n_classes": 10},
            "mask_type": mask_type,
            "use_any_mask": true,
            "mask": {"kind": "static", "input_shape": [1, 28, 28], "granularity": "pixel", "init_mean": 3.0, "init_std": 0.01, "input_drop_upscaling": false},
            "batch_size": 128, "eval_batch_size": 1000, "n_epochs": planned,
            "optim": {"lr_net": 0.001, "lr_mask": 0.005, "weight_decay_net": 0.0001, "weight_decay_mask": 1e-7, "beta_1": 0.5, "beta_2": 0.999, "epsilon": 1e-8},
            "lambda": {"init": 0.5, "factor": 1.5, "patience": 1, "threshold": 0.0025, "cooldown": 0},
            "tau": {"init": 1.0, "min": 1.0, "factor": 1.0},
            "checkpoint_qloss_interval": 0.05, "val_split": 0.1, "select_on": "val", "seed": 0, "log_iter": 0, "warmup": null
        },
        "dataset": {"name": "mnist", "shape": [1, 28, 28], "n_classes": 10, "mean": [0.1307], "std": [0.3081]},
        "repeat": repeat, "seed": repeat,
        "split_sizes": {"train": 54000, "val": 6000, "test": 10000}
    });
    write(&dir.join("config.json"), &serde_json::to_string_pretty(&config).unwrap());
    let lines: String = epochs.iter().map(|e| metrics_line(e) + "\n").collect();
    write(&dir.join("metrics.jsonl"), &lines);
    if with_summary {
        let points: Vec<_> = curve_points(epochs)
            .into_iter()
            .map(|(b, e)| {
                json!({
                    "interval": interval(b), "q": e.q, "bytes_fraction": e.bytes, "val_accuracy": e.val,
                    "test_accuracy": e.test, "selection_accuracy": e.val, "epoch": e.epoch, "lambda": e.lambda,
                    "checkpoint": format!("checkpoints/q_{:.4}.ckpt", interval(b)[0])
                })
            })
            .collect();
        let summary = json!({
            "run_dir": dir, "epochs_completed": epochs.len(), "epochs_planned": planned, "select_on": "val",
            "curve": {"width": 0.05, "points": points}, "last": null, "seconds": 12.0
        });
        write(&dir.join("summary.json"), &serde_json::to_string_pretty(&summary).unwrap());
    }
    dir
}

/// The synthetic runs directory: static × 3 and random × 3 complete runs,
/// one static run without summary, one unfinished random run, and a
/// pretrain directory that is not an experiment.
fn synthetic_runs(root: &Path) -> PathBuf {
    let runs = root.join("runs");
    for (r, epochs) in static_runs().iter().enumerate() {
        write_run(&runs, "static", r, epochs, 8, true);
    }
    for (r, epochs) in random_runs(8).iter().enumerate() {
        write_run(&runs, "random", r, epochs, 8, true);
    }
    write_run(&runs, "static", 3, &static_runs()[0][..2], 8, false);
    write_run(&runs, "random", 3, &random_runs(5)[0], 8, true);
    write(&runs.join("mnist/pretrain/seed_0/config.json"), "{}");
    runs
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// Cells of the Markdown table rows under `heading` (up to the next heading).
fn table_rows(md: &str, heading: &str) -> Vec<Vec<String>> {
    let start = md.find(heading).unwrap_or_else(|| panic!("no heading {heading:?} in\n{md}"));
    let section = &md[start + heading.len()..];
    let end = section.find("\n#").unwrap_or(section.len());
    section[..end]
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1) // header
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

/// Parses "m ± s" (or "m").
fn parse_pm(cell: &str) -> (f64, f64) {
    match cell.split_once(" ± ") {
        Some((m, s)) => (m.parse().unwrap(), s.parse().unwrap()),
        None => (cell.parse().unwrap(), 0.0),
    }
}

fn close(a: f64, b: f64, what: &str) {
    // Four decimals in the report.
    assert!((a - b).abs() <= 5.1e-5, "{what}: report says {a}, expected {b}");
}

/// Checks a PNG's signature and IHDR size, that it decodes, has text in
/// its title band and more than a handful of colours (not blank).
fn check_png(path: &Path, size: Option<(u32, u32)>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    if let Some(size) = size {
        assert_eq!((w, h), size, "{}", path.display());
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(colours.len() > 20, "{}: only {} colours", path.display(), colours.len());
    // Title text: dark pixels in the top 40 rows.
    let dark = pixels[..(w * 40) as usize].iter().filter(|p| p[..3].iter().all(|&c| c < 80)).count();
    assert!(dark > 50, "{}: no title text ({dark} dark pixels)", path.display());
}

/// Checks that an SVG parses as XML with an `<svg>` root and holds `texts`.
fn check_svg(path: &Path, texts: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let all: String = doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect::<Vec<_>>().join("\n");
    for t in texts {
        assert!(all.contains(t), "{}: no text {t:?}", path.display());
    }
}

/// A static mask frozen at its all-selected start is the paper's "full
/// data" reference: compared with its number (mnist ≈ 0.99 at Q = 1), not
/// with the static mask's, and the "(not run)" row is gone.
#[test]
fn a_frozen_all_selected_static_mask_is_reported_as_full_data() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let full: Vec<Epoch> =
        (0..4).map(|e| Epoch { epoch: e + 1, q: 1.0, bytes: 1.0, val: 0.97 + 0.001 * e as f64, test: 0.968, lambda: 0.0 }).collect();
    for r in 0..2 {
        let dir = write_run(&runs, "static", r, &full, 4, true);
        let path = dir.join("config.json");
        let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["config"]["freeze_mask"] = json!(true);
        write(&path, &config.to_string());
    }
    let out = tmp.path().join("report");
    let summary = write_report(&runs, &out, &ReportOptions::default()).unwrap();
    let md = std::fs::read_to_string(&summary.datasets[0].markdown).unwrap();
    let rows = table_rows(&md, "## Summary against the paper");
    let full = rows.iter().find(|r| r[0] == "static" && r[1] == "1").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!((full[2].as_str(), full[5].as_str()), ("2/2", "≈ 0.99"), "{full:?}");
    assert!(!rows.iter().any(|r| r[0].contains("not run") && r[0].contains("full")), "{rows:?}");
    assert!(
        rows.iter().filter(|r| r[0] == "static" && r[1] != "1").all(|r| r[5] == "–"),
        "not compared with the static mask's number: {rows:?}"
    );
}

#[test]
fn report_matches_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = synthetic_runs(tmp.path());
    let out = tmp.path().join("report");
    let options = ReportOptions {
        commands: vec!["selmask train --dataset mnist --mask-type static --n-repeats 3".into()],
        notes: vec!["8 epochs, 2-core CPU".into()],
        ..Default::default()
    };
    let summary = write_report(&runs, &out, &options).unwrap();

    // Skipped: exactly the run without summary and the unfinished one.
    let mut skipped: Vec<(String, String)> =
        summary.skipped.iter().map(|s| (s.dir.strip_prefix(&runs).unwrap().display().to_string(), s.reason.clone())).collect();
    skipped.sort();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "mnist/random/exp/run_3");
    assert!(skipped[0].1.contains("unfinished: 5 of 8"), "{}", skipped[0].1);
    assert_eq!(skipped[1].0, "mnist/static/exp/run_3");
    assert!(skipped[1].1.contains("no summary.json"), "{}", skipped[1].1);

    assert_eq!(summary.datasets.len(), 1);
    let d = &summary.datasets[0];
    assert_eq!(d.dataset, "mnist");
    assert_eq!(d.runs, 6);
    assert_eq!(d.experiments, vec!["static/exp".to_string(), "random/exp".to_string()]);
    assert_eq!(d.markdown, out.join("mnist.md"));
    let md = std::fs::read_to_string(&d.markdown).unwrap();

    // Per-interval tables against the metrics.
    for (heading, method_runs) in
        [("### static (`static/exp`, 3 runs)", static_runs()), ("### random (`random/exp`, 3 runs)", random_runs(8))]
    {
        let rows = table_rows(&md, heading);
        let mut expected: BTreeMap<usize, Vec<Epoch>> = BTreeMap::new();
        for run in &method_runs {
            for (b, e) in curve_points(run) {
                expected.entry(b).or_default().push(e);
            }
        }
        assert_eq!(rows.len(), expected.len(), "{heading}: {rows:?}");
        // Highest Q first.
        for (row, (b, eps)) in rows.iter().zip(expected.iter().rev()) {
            let [lo, hi] = interval(*b);
            assert_eq!(row[0], format!("[{lo:.2}, {hi:.2})"), "{heading}");
            assert_eq!(row[1], eps.len().to_string(), "{heading} {}", row[0]);
            let col = |f: fn(&Epoch) -> f64| eps.iter().map(f).collect::<Vec<_>>();
            close(row[2].parse().unwrap(), mean_std(&col(|e| e.q)).0, "mean Q");
            close(row[3].parse().unwrap(), mean_std(&col(|e| e.bytes)).0, "bytes");
            let (vm, vs) = parse_pm(&row[4]);
            let (tm, ts) = parse_pm(&row[5]);
            let (evm, evs) = mean_std(&col(|e| e.val));
            let (etm, ets) = mean_std(&col(|e| e.test));
            close(vm, evm, "val mean");
            close(vs, evs, "val std");
            close(tm, etm, "test mean");
            close(ts, ets, "test std");
            let epoch: f64 = row[6].parse().unwrap();
            assert!((epoch - mean_std(&col(|e| e.epoch as f64)).0).abs() <= 0.051, "mean epoch {epoch}");
        }
    }
    // Some static intervals are reached by fewer runs, and shown so.
    let static_rows = table_rows(&md, "### static (`static/exp`, 3 runs)");
    assert!(static_rows.iter().any(|r| r[0] == "[0.20, 0.25)" && r[1] == "1" && !r[5].contains('±')));
    assert!(static_rows.iter().any(|r| r[0] == "[0.10, 0.15)" && r[1] == "2"));

    // Summary at Q ≤ budget: best validation epoch with Q ≤ budget per run.
    let summary_rows = table_rows(&md, "## Summary against the paper");
    let find = |method: &str, budget: &str| {
        summary_rows
            .iter()
            .find(|r| r[0] == method && r[1] == budget)
            .unwrap_or_else(|| panic!("no summary row {method} {budget}: {summary_rows:?}"))
            .clone()
    };
    for (budget, label) in [(0.05, "0.05"), (0.10, "0.1")] {
        let chosen: Vec<Epoch> = static_runs()
            .iter()
            .map(|run| {
                let mut best: Option<Epoch> = None;
                for e in run.iter().filter(|e| e.q <= budget) {
                    if best.is_none_or(|b| e.val > b.val) {
                        best = Some(*e);
                    }
                }
                best.unwrap()
            })
            .collect();
        let row = find("static", label);
        assert_eq!(row[2], "3/3");
        close(row[3].parse().unwrap(), mean_std(&chosen.iter().map(|e| e.q).collect::<Vec<_>>()).0, "Q reached");
        let (m, s) = parse_pm(&row[4]);
        let (em, es) = mean_std(&chosen.iter().map(|e| e.test).collect::<Vec<_>>());
        close(m, em, "budget test mean");
        close(s, es, "budget test std");
        if budget == 0.05 {
            // mnist static at Q = 0.05 is ≈ 0.96 in the paper.
            assert_eq!(row[5], "≈ 0.96");
            close(row[6].parse().unwrap(), em - 0.96, "difference");
        } else {
            assert_eq!(row[5], "–");
        }
    }
    let random = find("random", "0.05");
    assert_eq!((random[2].as_str(), random[4].as_str(), random[5].as_str()), ("0/3", "not reached", "≈ 0.78"));
    assert!(summary_rows.iter().any(|r| r[0] == "full data (not run)" && r[5] == "≈ 0.99"));
    assert!(summary_rows.iter().any(|r| r[0] == "RF (not run)"));
    assert!(md.contains("Q ≤ q"), "the rule is stated");

    // The other sections.
    let skipped_rows = table_rows(&md, "## Skipped runs");
    assert_eq!(skipped_rows.len(), 2);
    assert!(skipped_rows.iter().any(|r| r[0] == "`mnist/static/exp/run_3`" && r[1].contains("no summary.json")));
    assert!(md.contains("selmask train --dataset mnist --mask-type static --n-repeats 3"));
    assert!(md.contains("- 8 epochs, 2-core CPU"));
    assert!(md.contains("| mnist | static | 0.05 | ≈ 0.96 |"), "paper table");

    // Figures: listed, linked, valid.
    assert_eq!(d.figures.len(), 6, "{:?}", d.figures);
    for f in &d.figures {
        assert!(f.starts_with(out.join("figures")), "{}", f.display());
        let rel = f.strip_prefix(&out).unwrap().display().to_string();
        assert!(md.contains(&format!("({rel})")), "{rel} not linked");
        let name = f.file_name().unwrap().to_str().unwrap();
        match f.extension().unwrap().to_str().unwrap() {
            "png" => check_png(f, Some(if name.contains("comparison") { (1800, 780) } else { (1400, 1300) })),
            "svg" if name.contains("comparison") => {
                check_svg(f, &["test accuracy", "paper: static (0.96)", "static (3 runs)", "zoom: Q ≤ 0.3"])
            }
            "svg" if name.contains("static") => {
                check_svg(f, &["accuracy", "λ (log scale)", "bytes fraction (mean)", "thick: mean of 3 runs"])
            }
            "svg" => check_svg(f, &["λ is 0 in every epoch (not used by this method)"]),
            other => panic!("unexpected figure {other}"),
        }
    }
    if let Ok(keep) = std::env::var("REPORT_KEEP_OUTPUT") {
        copy_dir(&out, &PathBuf::from(keep).join("synthetic"));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn bad_json_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = synthetic_runs(tmp.path());
    let summary = runs.join("mnist/static/exp/run_1/summary.json");
    std::fs::write(&summary, "{\"run_dir\": ").unwrap();
    let err = write_report(&runs, &tmp.path().join("out"), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Wire(WireError::Json { .. })), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&summary.display().to_string()) && msg.contains("invalid json"), "{msg}");

    // A bad line inside metrics.jsonl names the file and the line.
    let runs = synthetic_runs(&tmp.path().join("b"));
    let metrics = runs.join("mnist/random/exp/run_0/metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"epoch\": 2, \"q\": \"high\"}";
    std::fs::write(&metrics, lines.join("\n") + "\n").unwrap();
    let msg = write_report(&runs, &tmp.path().join("out"), &ReportOptions::default()).unwrap_err().to_string();
    assert!(msg.contains(&format!("{} line 2: invalid json", metrics.display())), "{msg}");

    // A half-written last line (no newline yet) is a run in progress: skipped.
    let runs = synthetic_runs(&tmp.path().join("c"));
    let metrics = runs.join("mnist/random/exp/run_0/metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"epoch\": 9, \"train_lo");
    std::fs::write(&metrics, text).unwrap();
    let summary = write_report(&runs, &tmp.path().join("out"), &ReportOptions::default()).unwrap();
    assert!(summary.skipped.iter().any(|s| s.dir.ends_with("random/exp/run_0") && s.reason.contains("partly written")));
}

#[test]
fn empty_or_missing_runs_dir_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = write_report(tmp.path(), &tmp.path().join("out"), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoRuns { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("no runs found under {}", tmp.path().display())), "{err}");

    let missing = tmp.path().join("nope");
    let err = write_report(&missing, &tmp.path().join("out"), &ReportOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), format!("runs directory {} does not exist or is not a directory", missing.display()));

    // Only incomplete runs.
    let runs = tmp.path().join("runs");
    write_run(&runs, "static", 0, &static_runs()[0][..3], 8, true);
    let err = write_report(&runs, &tmp.path().join("out"), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoCompleteRuns { skipped: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("unfinished: 3 of 8 epochs"), "{err}");
    // ... which the option lets through; a dotted experiment name keeps
    // its dots in the figure names the report links to.
    std::fs::rename(runs.join("mnist/static/exp"), runs.join("mnist/static/lr0.005")).unwrap();
    let options = ReportOptions { include_unfinished: true, ..Default::default() };
    let out = tmp.path().join("out");
    let summary = write_report(&runs, &out, &options).unwrap();
    assert_eq!(summary.datasets[0].runs, 1);
    let md = std::fs::read_to_string(out.join("mnist.md")).unwrap();
    for ext in ["png", "svg"] {
        let rel = format!("figures/mnist_static_lr0.005_epochs.{ext}");
        assert!(out.join(&rel).is_file() && md.contains(&format!("({rel})")), "{rel}");
    }
}

/// A 28×28 "digit" (a ring) and a 32×32 colour image, with masks.
#[test]
fn mask_figures_for_one_and_three_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var("REPORT_KEEP_OUTPUT").ok().map(PathBuf::from);
    let dir = keep.clone().map_or(tmp.path().to_path_buf(), |k| k.join("masks"));

    // One channel, pixel mask: a ring, the mask keeps a diagonal band.
    let (mean, std) = ([0.1307f32], [0.3081f32]);
    let mut images = Vec::new();
    let mut masks = Vec::new();
    for k in 0..6 {
        let mut img = vec![0f32; 28 * 28];
        let mut mask = vec![0f32; 28 * 28];
        for y in 0..28 {
            for x in 0..28 {
                let r = (((y as f32 - 14.0).powi(2) + (x as f32 - 14.0 + k as f32 - 2.5).powi(2)).sqrt() - 8.0).abs();
                let v = (1.0 - r / 2.5).max(0.0);
                img[y * 28 + x] = (v - mean[0]) / std[0];
                mask[y * 28 + x] = if (x + y) % 9 == k % 9 || (10..18).contains(&y) && x % 7 == 3 { 1.0 } else { 0.0 };
            }
        }
        images.push(img);
        masks.push(mask);
    }
    let captions = ["label 0, predicted 0", "label 0, predicted 6", "", "", "", "label 0"];
    let examples: Vec<MaskExample> = (0..6)
        .map(|i| MaskExample { image: &images[i], mask: &masks[i], caption: (!captions[i].is_empty()).then_some(captions[i]) })
        .collect();
    let q = masks[0].iter().sum::<f32>() as f64 / 784.0;
    let fig =
        MaskFigure { title: "mnist · static pixel mask", q, shape: [1, 28, 28], mean: &mean, std: &std, examples: &examples, columns: 0 };
    let files = mask_figure(&fig, &dir.join("mask_1ch")).unwrap();
    assert_eq!(files.len(), 2);
    check_png(&files[0], None);
    check_svg(&files[1], &["mnist · static pixel mask — Q = ", "label 0, predicted 6", "sent "]);

    // Three channels, per-channel (sub) mask of 4×4 blocks.
    let (mean3, std3) = ([0.49f32, 0.48, 0.45], [0.25f32, 0.24, 0.26]);
    let mut images = Vec::new();
    let mut masks = Vec::new();
    for k in 0..4 {
        let mut img = vec![0f32; 3 * 32 * 32];
        let mut mask = vec![0f32; 3 * 32 * 32];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let v = match c {
                        0 => x as f32 / 31.0,
                        1 => y as f32 / 31.0,
                        _ => (k as f32 / 3.0 + ((x / 8 + y / 8) % 2) as f32 * 0.3).min(1.0),
                    };
                    img[(c * 32 + y) * 32 + x] = (v - mean3[c]) / std3[c];
                    let block = (y / 4) * 8 + x / 4;
                    mask[(c * 32 + y) * 32 + x] = if (block * 7 + c * 3 + k) % 5 == 0 || c == k % 3 && block % 3 == 0 { 1.0 } else { 0.0 };
                }
            }
        }
        images.push(img);
        masks.push(mask);
    }
    let examples: Vec<MaskExample> = (0..4).map(|i| MaskExample { image: &images[i], mask: &masks[i], caption: None }).collect();
    let fig = MaskFigure {
        title: "cifar10 · static subquadpixel mask",
        q: 0.3,
        shape: [3, 32, 32],
        mean: &mean3,
        std: &std3,
        examples: &examples,
        columns: 0,
    };
    let files = mask_figure(&fig, &dir.join("mask_3ch")).unwrap();
    check_png(&files[0], None);
    check_svg(&files[1], &["Q = 0.300"]);
    // The SVG embeds the tiles as PNG images.
    assert!(std::fs::read_to_string(&files[1]).unwrap().contains("<image"));

    // Many bands and a large, non-square input: grey mean of the bands,
    // tiles shrunk by box averaging; a 12×12-grid-like block mask.
    let (c, h, w) = (4, 300, 200);
    let image: Vec<f32> = (0..c * h * w).map(|i| ((i % w) as f32 / w as f32 + (i / w % h) as f32 / h as f32) - 1.0).collect();
    let mask: Vec<f32> = (0..c * h * w).map(|i| if ((i % w) * 12 / w + (i / w % h) * 12 / h) % 4 == 0 { 1.0 } else { 0.0 }).collect();
    let examples = [MaskExample { image: &image, mask: &mask, caption: Some("bands averaged") }; 3];
    let big = MaskFigure {
        title: "remote · static CXLIVdrant mask",
        q: 0.25,
        shape: [c, h, w],
        mean: &[0.5],
        std: &[0.5],
        examples: &examples,
        columns: 0,
    };
    let files = mask_figure(&big, &dir.join("mask_4ch_large")).unwrap();
    check_png(&files[0], None);

    // Sizes that disagree are refused, naming the example.
    let short = vec![0f32; 10];
    let bad = [MaskExample { image: &images[0], mask: &short, caption: None }];
    let fig = MaskFigure { examples: &bad, ..fig };
    let err = mask_figure(&fig, &dir.join("bad")).unwrap_err();
    assert!(err.to_string().contains("example 0: image has 3072 values and mask 10, expected 3072"), "{err}");
}
