//! `selmask reproduce`: the paper's experiments as named presets of
//! `selmask train`.
//!
//! A preset is one of the authors' `exp_scripts` (the `create_mask.py`
//! command line they ran), run through the same parser as `selmask train`,
//! so a preset can never drift from the flags. Where the supplement's
//! Tables 2a/2b list other values, the preset records them and
//! `--params table` runs them instead. Known slips of the scripts are fixed
//! and named in the preset's note: both Fashion-MNIST scripts of the learned
//! masks passed `--dataset mnist`, the svhn script lacked a space between two
//! flags, and the 48×48 ships script is named `48x49block`.
//!
//! The protocol is a second, independent choice: ours (`val`: 10% of the
//! training set held out to schedule λ and pick checkpoints) or the
//! authors' (`paper`: train on the whole training set, decide on test).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Serialize;

use crate::cli::reproduce::ReproduceArgs;
use crate::data::DatasetName;

/// Which parameters a preset runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Params {
    /// The authors' experiment script (what was run).
    Script,
    /// The supplement's Table 2a/2b where it differs from the script.
    Table,
}

/// How the training set is used and what λ and the checkpoints are chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Ours: hold out 10% of the training set, schedule λ and pick checkpoints on it (train's defaults).
    Val,
    /// The authors': train on the whole training set, schedule λ and pick checkpoints on test (`--val-split 0 --select-on test`).
    Paper,
}

/// One experiment of the paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preset {
    /// Name for `selmask reproduce NAME`.
    pub name: &'static str,
    /// The authors' script (`exp_scripts/<script>`); also accepted as a name.
    pub script: &'static str,
    /// The supplement's table that lists the experiment, if one does.
    pub table: Option<&'static str>,
    /// The script's `selmask train` flags (everything after `train`).
    pub args: Vec<String>,
    /// Flags whose value the table gives otherwise: `(flag, table's value)`.
    pub table_values: Vec<(&'static str, &'static str)>,
    /// What a reader should know (fixed slips, our choices).
    pub note: &'static str,
    /// Baselines: the epochs the script's `--random-change-iter` was meant
    /// for (the dataset's default), so that an epoch override keeps the
    /// fraction of cells removed by the last epoch.
    pub removal_epochs: Option<usize>,
}

impl Preset {
    /// The `selmask train` flags of `params` (`None` when the preset is in
    /// no table and `params` asks for the table).
    pub fn args_for(&self, params: Params) -> Option<Vec<String>> {
        match params {
            Params::Script => Some(self.args.clone()),
            Params::Table if self.table.is_none() => None,
            Params::Table => Some(self.table_values.iter().fold(self.args.clone(), |a, (k, v)| with_flag(a, k, v))),
        }
    }

    /// `args` with the epochs set to `epochs` (and the baselines' removal
    /// interval scaled with them, so Q ends where the script's run ends).
    pub fn with_epochs(&self, args: Vec<String>, epochs: usize) -> Vec<String> {
        let mut args = with_flag(args, "n-epochs", &epochs.to_string());
        if let Some(script_epochs) = self.removal_epochs {
            let change: usize = flag_value(&args, "random-change-iter").and_then(|v| v.parse().ok()).unwrap_or(1);
            let scaled = ((change * epochs) as f64 / script_epochs as f64).round().max(1.0) as usize;
            args = with_flag(args, "random-change-iter", &scaled.to_string());
        }
        args
    }

    /// The differences from the table, one line ("" when there are none).
    pub fn table_differences(&self) -> String {
        let Some(table) = self.table else { return String::new() };
        if self.table_values.is_empty() {
            return String::new();
        }
        let diffs: Vec<String> = self
            .table_values
            .iter()
            .map(|(k, v)| format!("--{k} {v} (script: {})", flag_value(&self.args, k).unwrap_or("default")))
            .collect();
        format!("{table} differs: {}; --params table runs the table's values", diffs.join(", "))
    }
}

fn flags(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [format!("--{k}"), v.to_string()]).collect()
}

/// What every learned-mask script shares besides its own flags: the λ
/// schedule, the mask learning rate, the epochs, the warm-up network and
/// ten repeats.
fn learned(dataset: &str, mask: &[(&str, &str)], [init, factor, patience]: [&str; 3], lr: &str, epochs: &str, upscaling: bool) -> Vec<String> {
    let mut pairs = vec![("dataset", dataset)];
    pairs.extend_from_slice(mask);
    pairs.extend([
        ("lambda-init", init),
        ("lambda-factor", factor),
        ("lambda-patience", patience),
        ("lr", lr),
        ("n-epochs", epochs),
        ("use-warmup-net", "1"),
    ]);
    if !upscaling {
        pairs.push(("input-drop-upscaling", "false"));
    }
    pairs.push(("n-repeats", "10"));
    flags(&pairs)
}

/// A learned-mask preset.
fn preset(
    name: &'static str,
    script: &'static str,
    table: Option<&'static str>,
    args: Vec<String>,
    table_values: &[(&'static str, &'static str)],
    note: &'static str,
) -> Preset {
    Preset { name, script, table, args, table_values: table_values.to_vec(), note, removal_epochs: None }
}

/// A random or given (RF) baseline: every `change` iterations one cell
/// leaves, over the dataset's default epochs (`epochs`), no warm-up.
#[allow(clippy::too_many_arguments)]
fn baseline(name: &'static str, script: &'static str, dataset: &str, kind: &str, change: &str, upscaling: bool, epochs: usize, note: &'static str) -> Preset {
    let mut pairs = vec![("dataset", dataset), ("mask-type", kind), ("random-change-iter", change)];
    if !upscaling {
        pairs.push(("input-drop-upscaling", "false"));
    }
    pairs.push(("n-repeats", "10"));
    Preset { name, script, table: None, args: flags(&pairs), table_values: vec![], note, removal_epochs: Some(epochs) }
}

/// The JPEG levels of the xor and pipeline scripts.
fn with_quality_levels(mut args: Vec<String>) -> Vec<String> {
    args.push("--quality-levels".into());
    args.extend(["90", "70", "50", "30", "10"].map(String::from));
    args
}

const SHIPS_NOTE: &str = "SqueezeNet 1.1: the paper started from ImageNet weights; convert torchvision's to safetensors (the command is in `selmask train --help`, --pretrained) and pass it with --pretrained PATH: the warm-up and the run start from it. The mask model g sees a max-pooled preview (--dynamic-h/-w), not the full 384x384 image";
const RANDOM_NOTE: &str = "the script's removal rate: one cell every --random-change-iter iterations over the dataset's default epochs, so Q ends well above 0 (mnist: about 0.88); the paper's curves go lower, so the authors must have run longer; pass `-- --random-change-iter N` to remove faster. No warm-up, as the script";
const RF_NOTE: &str = "ten random-forest importance maps, one per repeat (run_i uses <ds>_rf_<i+1>.npy of --given-mask-dir, the authors' given_masks/ names); when none is given, `selmask importance` makes them under seeds 1..n into the experiment directory and later runs reuse them. The script's --slurm-friendly is not part of the preset: add `-- --slurm-friendly` to run one repeat per process";

/// Every preset, in the order of the supplement's tables, then the xor
/// scripts and the baselines.
pub fn presets() -> Vec<Preset> {
    let t2a = Some("Table 2a");
    let t2b = Some("Table 2b");
    let learned_static = |dataset: &str, extra: &[(&'static str, &'static str)], lambda, lr, epochs, upscaling| {
        let mut mask = vec![("mask-type", "static")];
        mask.extend_from_slice(extra);
        learned(dataset, &mask, lambda, lr, epochs, upscaling)
    };
    let dynamic = |dataset: &str, extra: &[(&'static str, &'static str)], lambda, lr, epochs| {
        let mut mask = vec![("mask-type", "dynamic")];
        mask.extend_from_slice(extra);
        // Every dynamic script turns upscaling off.
        learned(dataset, &mask, lambda, lr, epochs, false)
    };
    let xor = |dataset: &str, any: (&'static str, &'static str)| {
        with_quality_levels(learned_static(dataset, &[any], ["1", "1.25", "10"], "0.0001", "300", true))
    };
    let ships = |granularity, side| {
        dynamic(
            "ships",
            &[("dynamic-mask", "convatt"), ("any-granularity", granularity), ("dynamic-h", side), ("dynamic-w", side), ("batch-size", "256")],
            ["0.025", "1.15", "9"],
            "0.0005",
            "400",
        )
    };
    vec![
        preset(
            "static-remote-channel",
            "static_channel_remote",
            t2a,
            learned_static("remote", &[("any-granularity", "channel")], ["0.15", "1.25", "10"], "0.001", "300", true),
            &[("lambda-init", "0.1")],
            "the all-convolutional net of the authors' code; its augmentation is both flips (the code disabled the crop)",
        ),
        preset(
            "static-cifar10-pixel",
            "static_pixel_cifar10",
            t2a,
            learned_static("cifar10", &[], ["1", "1.05", "5"], "0.001", "300", true),
            &[],
            "granularity: the script's default subpixel, one choice per value of every channel (the paper's \"pixel\" figure shows per-channel choices; `-- --any-granularity pixel` for whole pixels); input-drop upscaling on, as the script",
        ),
        preset(
            "static-mnist-pixel",
            "static_pixel_mnist",
            t2a,
            learned_static("mnist", &[], ["0.0005", "1.5", "5"], "0.0005", "400", false),
            &[("lr", "0.005")],
            "granularity: the script's default subpixel, which is pixel on one channel",
        ),
        preset(
            "static-fmnist-pixel",
            "static_pixel_fashionmnist",
            t2a,
            learned_static("fashion_mnist", &[], ["0.0005", "1.5", "2"], "0.0005", "400", true),
            &[("lambda-patience", "5"), ("lr", "0.005")],
            "the script passed --dataset mnist, meaning fashion_mnist (its name, the table): fixed; it leaves input-drop upscaling on",
        ),
        preset(
            "static-galaxy10-pixel",
            "static_pixel_galaxy10",
            t2a,
            learned_static("galaxy10", &[], ["1", "1.5", "2"], "0.001", "300", false),
            &[],
            "granularity: the script's default subpixel (per channel); ResNet20 with stride 2 in its first stage, as METHOD.md says (the authors' code set that stride after construction, where it had no effect)",
        ),
        preset(
            "static-cifar10-channel",
            "static_channel_cifar10",
            None,
            learned_static("cifar10", &[("any-granularity", "channel")], ["1", "1.25", "5"], "0.001", "300", true),
            &[],
            "",
        ),
        preset(
            "static-svhn-grid12",
            "static_12x12block_svhn",
            t2a,
            learned_static("svhn", &[("any-granularity", "subCXLIVdrant")], ["0.125", "1.25", "5"], "0.001", "300", true),
            &[],
            "the script lacked a space between two flags; fixed. A 12x12 grid of cells per channel",
        ),
        preset(
            "dynamic-mnist-pixel",
            "dynamic_pixel_mnist",
            t2b,
            dynamic("mnist", &[("dynamic-mask", "linear")], ["0.0005", "1.5", "5"], "0.0005", "400"),
            &[],
            "",
        ),
        preset(
            "dynamic-fmnist-pixel",
            "dynamic_pixel_fashionmnist",
            t2b,
            dynamic("fashion_mnist", &[("dynamic-mask", "linear")], ["0.0005", "1.5", "2"], "0.0005", "400"),
            &[],
            "the script passed --dataset mnist, meaning fashion_mnist (its name, the table): fixed",
        ),
        preset(
            "dynamic-cifar10-pixel",
            "dynamic_pixel_cifar10",
            t2b,
            dynamic("cifar10", &[("dynamic-mask", "convatt")], ["0.1", "1.15", "10"], "0.001", "300"),
            &[],
            "granularity: the script's default subpixel, one choice per value of every channel",
        ),
        preset("dynamic-ships-grid12", "dynamic_12x12block_ships", t2b, ships("subCXLIVdrant", "12"), &[], SHIPS_NOTE),
        preset(
            "dynamic-ships-grid48",
            "dynamic_48x49block_ships",
            t2b,
            ships("sub48drant", "48"),
            &[],
            "the script's file name says 48x49, its flags 48x48. SqueezeNet 1.1: see dynamic-ships-grid12",
        ),
        preset("static-xor-cifar10", "static_xor_cifar10", None, xor("cifar10", ("use-any-mask", "0")), &[], ""),
        preset("static-pipeline-cifar10", "static_pipeline_cifar10", None, xor("cifar10", ("any-init-mean", "0.25")), &[], ""),
        preset("static-pipeline-svhn", "static_pipeline_svhn", None, xor("svhn", ("any-init-mean", "0.5")), &[], ""),
        baseline("random-mnist-pixel", "random_pixel_mnist", "mnist", "random", "245", false, 50, RANDOM_NOTE),
        baseline("random-fmnist-pixel", "random_pixel_fashionmnist", "fashion_mnist", "random", "245", false, 50, RANDOM_NOTE),
        baseline("random-cifar10-pixel", "random_pixel_cifar10", "cifar10", "random", "48", true, 100, RANDOM_NOTE),
        baseline("given-mnist-pixel", "RF_pixel_mnist", "mnist", "given", "245", false, 50, RF_NOTE),
        baseline("given-fmnist-pixel", "RF_pixel_fmnist", "fashion_mnist", "given", "245", false, 50, RF_NOTE),
        baseline("given-cifar10-pixel", "RF_pixel_cifar10", "cifar10", "given", "48", true, 100, RF_NOTE),
    ]
}

/// The preset `name` (or script name), or an error listing the names.
pub fn find(name: &str) -> Result<Preset, String> {
    if name == "static_channel_supernova" {
        return Err(format!("{name}: the authors' code has no supernova loader, so neither has selmask; no preset"));
    }
    presets().into_iter().find(|p| p.name == name || p.script == name).ok_or_else(|| {
        format!(
            "unknown experiment '{name}'; known: {} (or their script names; --list shows them)",
            presets().iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// `args` with `--flag value` replaced (or appended).
pub fn with_flag(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    let key = format!("--{flag}");
    match args.iter().position(|a| *a == key) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([key, value.to_string()]),
    }
    args
}

/// The value after `--flag` in `args`.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let key = format!("--{flag}");
    args.iter().position(|a| *a == key).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// The long name of a flag token (`--lr`, `--lr=0.1`, `-q`) of the `train`
/// subcommand, `None` for values.
fn flag_name(token: &str, train: &clap::Command) -> Option<String> {
    if let Some(long) = token.strip_prefix("--") {
        return Some(long.split('=').next().unwrap_or(long).to_string());
    }
    let mut chars = token.strip_prefix('-')?.chars();
    let short = chars.next().filter(char::is_ascii_alphabetic)?;
    let long = train.get_arguments().find(|a| a.get_short() == Some(short)).and_then(|a| a.get_long());
    // An unknown short flag is left for clap to refuse.
    Some(long.map_or_else(|| token.to_string(), str::to_string))
}

/// `args` with every flag that `overrides` sets removed (with its values),
/// then `overrides` appended: the user's value replaces the preset's, and
/// no flag reaches clap twice.
pub fn apply_overrides(args: Vec<String>, overrides: &[String]) -> Vec<String> {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let train = cli.find_subcommand("train").expect("the train subcommand");
    let replaced: Vec<String> = overrides.iter().filter_map(|t| flag_name(t, train)).collect();
    let mut out = Vec::new();
    let mut skipping = false;
    for token in args {
        // Preset values never start with "--" (negative numbers have one dash).
        if token.starts_with("--") {
            skipping = replaced.iter().any(|r| token[2..] == *r);
        }
        if !skipping {
            out.push(token);
        }
    }
    out.extend(overrides.iter().cloned());
    out
}

/// The authors' file name prefix of a dataset's importance maps
/// (`given_masks/<prefix>_rf_<i>.npy`); our dataset name for the datasets
/// they made none for.
pub fn rf_prefix(dataset: DatasetName) -> &'static str {
    match dataset {
        DatasetName::Mnist => "mnist",
        DatasetName::FashionMnist => "fmnist",
        DatasetName::Cifar10 => "cifar",
        other => other.as_str(),
    }
}

/// The importance map of repeat `repeat` (0-based; run_0 reads map 1) in
/// the directory `dir`.
pub fn rf_map_path(dir: &Path, dataset: DatasetName, repeat: usize) -> PathBuf {
    dir.join(format!("{}_rf_{}.npy", rf_prefix(dataset), repeat + 1))
}

/// The experiment's directory of generated importance maps.
fn generated_maps_dir(args: &[String]) -> Option<PathBuf> {
    let dataset: DatasetName = flag_value(args, "dataset")?.parse().ok()?;
    let exp_dir = flag_value(args, "exp-dir").unwrap_or("./runs");
    let name = flag_value(args, "name")?;
    Some(Path::new(exp_dir).join(dataset.as_str()).join("given").join(name).join("given_masks"))
}

/// A preset resolved to its `selmask train` flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The preset.
    pub preset: Preset,
    /// Everything after `selmask train`.
    pub args: Vec<String>,
    /// Given baselines without `--given-mask-dir`: the directory where
    /// missing maps are made (the experiment's `given_masks/`).
    pub make_maps_in: Option<PathBuf>,
}

/// The experiment name: the preset's, marked when the parameters or the
/// protocol differ from the defaults, so their runs never mix.
fn experiment_name(preset: &Preset, params: Params, protocol: Protocol) -> String {
    let mut name = preset.name.to_string();
    if params == Params::Table && !preset.table_values.is_empty() {
        name.push_str("-table");
    }
    if protocol == Protocol::Paper {
        name.push_str("-paper");
    }
    name
}

/// The `selmask train` flags of `args.name`: the preset with `--params`,
/// the protocol, reproduce's own options, then the overrides after `--`.
pub fn resolve(args: &ReproduceArgs) -> Result<Resolved, String> {
    let preset = find(args.name.as_deref().unwrap_or_default())?;
    let mut flags = preset.args_for(args.params).ok_or_else(|| {
        format!("--params table: {} ({}) is in neither Table 2a nor 2b; use --params script", preset.name, preset.script)
    })?;
    if let Some(n) = args.n_epochs {
        flags = preset.with_epochs(flags, n);
    }
    if let Some(n) = args.n_repeats {
        flags = with_flag(flags, "n-repeats", &n.to_string());
    }
    if args.protocol == Protocol::Paper {
        flags = with_flag(flags, "val-split", "0");
        flags = with_flag(flags, "select-on", "test");
    }
    flags = with_flag(flags, "exp-dir", &args.exp_dir.display().to_string());
    // A warm-up trained on the whole training set has seen the validation
    // items of our protocol: the two protocols keep separate ones.
    let warmup_dir = match args.protocol {
        Protocol::Val => args.warmup_dir.clone(),
        Protocol::Paper => args.warmup_dir.join("paper-protocol"),
    };
    flags = with_flag(flags, "warmup-dir", &warmup_dir.display().to_string());
    flags = with_flag(flags, "name", &experiment_name(&preset, args.params, args.protocol));
    if let Some(d) = &args.data_dir {
        flags = with_flag(flags, "data-dir", &d.display().to_string());
    }
    if let Some(w) = &args.pretrained {
        flags = with_flag(flags, "pretrained", &w.display().to_string());
    }
    if let Some(d) = &args.given_mask_dir {
        flags = with_flag(flags, "given-mask-dir", &d.display().to_string());
    }
    if args.stream {
        flags.push("--stream".into());
    }
    if args.quiet {
        flags.push("--quiet".into());
    }
    flags = apply_overrides(flags, &args.train_overrides);
    let mut make_maps_in = None;
    if flag_value(&flags, "mask-type") == Some("given") && !flags.iter().any(|f| f == "--given-mask-dir" || f == "--given-mask-path") {
        let dir = generated_maps_dir(&flags).ok_or("a given preset needs --dataset and --name")?;
        flags = with_flag(flags, "given-mask-dir", &dir.display().to_string());
        make_maps_in = Some(dir);
    }
    Ok(Resolved { preset, args: flags, make_maps_in })
}

#[cfg(test)]
mod tests;
