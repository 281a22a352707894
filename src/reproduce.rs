//! `selmask reproduce`: the paper's experiments (supplement, Tables 2a and
//! 2b, and the xor / pipeline scripts of its code's `exp_scripts`) as named
//! presets of `selmask train`.
//!
//! A preset is the `create_mask.py` command line of the paper with its
//! parameters, run through the same parser as `selmask train`, so a preset
//! can never drift from the flags. Known slips of the original scripts are
//! fixed here: both Fashion-MNIST scripts passed `--dataset mnist`, and the
//! svhn script lacked a space between two flags.

use serde::Serialize;

/// One experiment of the paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preset {
    /// Name for `selmask reproduce NAME`.
    pub name: &'static str,
    /// Where it comes from.
    pub source: &'static str,
    /// The `selmask train` flags (everything after `train`).
    pub args: Vec<String>,
    /// What a reader should know (missing pieces, our choices).
    pub note: &'static str,
    /// Baselines: `(cells, iterations per epoch)`, so that an epoch
    /// override keeps Q falling to about 0 by the last epoch.
    pub linear_removal: Option<(usize, usize)>,
}

impl Preset {
    /// The `selmask train` flags with the epochs set to `epochs` (and the
    /// baselines' removal rate rescaled to match).
    pub fn with_epochs(&self, epochs: usize) -> Vec<String> {
        let mut args = with_flag(self.args.clone(), "n-epochs", &epochs.to_string());
        if let Some((cells, iters)) = self.linear_removal {
            args = with_flag(args, "random-change-iter", &(epochs * iters / cells).max(1).to_string());
        }
        args
    }
}

fn flags(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [format!("--{k}"), v.to_string()]).collect()
}

/// A row of Table 2a (`kind` static) or 2b (dynamic): the mask-specific
/// flags, then the λ schedule, learning rate and epochs every row has.
#[allow(clippy::too_many_arguments)]
fn table_row(
    name: &'static str,
    source: &'static str,
    mask: &[(&str, &str)],
    [init, factor, patience]: [&str; 3],
    lr: &str,
    epochs: &str,
    note: &'static str,
) -> Preset {
    let mut pairs = mask.to_vec();
    pairs.extend([
        ("lambda-init", init),
        ("lambda-factor", factor),
        ("lambda-patience", patience),
        ("lr", lr),
        ("n-epochs", epochs),
        ("use-warmup-net", "1"),
        ("n-repeats", "10"),
    ]);
    Preset { name, source, args: flags(&pairs), note, linear_removal: None }
}

/// A static-mask row of Table 2a.
fn static_row(name: &'static str, dataset: &str, granularity: &str, lambda: [&str; 3], lr: &str, epochs: &str, note: &'static str) -> Preset {
    let mask = [("dataset", dataset), ("mask-type", "static"), ("any-granularity", granularity), ("any-init-mean", "3")];
    table_row(name, "Table 2a (static)", &mask, lambda, lr, epochs, note)
}

/// A dynamic-mask row of Table 2b.
#[allow(clippy::too_many_arguments)]
fn dynamic_row(name: &'static str, dataset: &str, granularity: &str, model: &str, lambda: [&str; 3], lr: &str, epochs: &str, note: &'static str) -> Preset {
    let mask = [("dataset", dataset), ("mask-type", "dynamic"), ("dynamic-mask", model), ("any-granularity", granularity)];
    table_row(name, "Table 2b (dynamic)", &mask, lambda, lr, epochs, note)
}

/// A random or given baseline: cells leave one at a time, so that Q falls
/// linearly to about 0 over `epochs` epochs of `iters` iterations.
fn baseline(name: &'static str, dataset: &str, kind: &str, cells: usize, iters: usize, epochs: usize, note: &'static str) -> Preset {
    let change = (epochs * iters / cells).max(1).to_string();
    let mut args = flags(&[
        ("dataset", dataset),
        ("mask-type", kind),
        ("any-granularity", "pixel"),
        ("random-num-del", "1"),
        ("random-change-iter", &change),
        ("n-epochs", &epochs.to_string()),
        ("use-warmup-net", "1"),
        ("n-repeats", "10"),
    ]);
    if kind == "given" {
        args.extend(["--given-mask-path".to_string(), format!("importance/{dataset}.npy")]);
    }
    Preset { name, source: "Section 5 baselines (random / RF)", args, note, linear_removal: Some((cells, iters)) }
}

/// An xor run of the paper's `exp_scripts` (`static_xor_cifar10`,
/// `static_pipeline_*`): JPEG levels 90 70 50 30 10 chosen per whole input,
/// alone (`any_init_mean` `None`: `--use-any-mask 0`) or followed by the
/// per-value any mask starting at that logit mean (the pipeline).
fn xor_row(name: &'static str, dataset: &str, any_init_mean: Option<&str>, note: &'static str) -> Preset {
    let mut pairs = vec![("dataset", dataset), ("mask-type", "static"), ("lambda-init", "1"), ("lr", "0.0001"), ("lambda-factor", "1.25")];
    match any_init_mean {
        Some(mean) => pairs.push(("any-init-mean", mean)),
        None => pairs.push(("use-any-mask", "0")),
    }
    pairs.extend([("use-warmup-net", "1"), ("n-epochs", "300"), ("lambda-patience", "10"), ("n-repeats", "10")]);
    let mut args = flags(&pairs);
    args.push("--quality-levels".into());
    args.extend(["90", "70", "50", "30", "10"].map(String::from));
    Preset { name, source: "exp_scripts (xor / pipeline)", args, note, linear_removal: None }
}


/// Every preset, in the order of the supplement's tables.
pub fn presets() -> Vec<Preset> {
    vec![
        static_row("static-remote-channel", "remote", "channel", ["0.1", "1.25", "10"], "0.001", "300", "the all-convolutional net of the authors' code; its augmentation is both flips (the code disabled the crop)"),
        static_row("static-cifar10-pixel", "cifar10", "pixel", ["1", "1.05", "5"], "0.001", "300", ""),
        static_row("static-mnist-pixel", "mnist", "pixel", ["0.0005", "1.5", "5"], "0.005", "400", ""),
        static_row("static-fmnist-pixel", "fashion_mnist", "pixel", ["0.0005", "1.5", "5"], "0.005", "400", "the original script passed --dataset mnist; fixed"),
        static_row("static-galaxy10-pixel", "galaxy10", "pixel", ["1", "1.5", "2"], "0.001", "300", "ResNet20 with stride 2 in its first stage, as METHOD.md says (the authors' code set that stride after construction, where it had no effect)"),
        static_row("static-svhn-grid12", "svhn", "subCXLIVdrant", ["0.125", "1.25", "5"], "0.001", "300", "the original script lacked a space between two flags; fixed"),
        dynamic_row("dynamic-mnist-pixel", "mnist", "subpixel", "linear", ["0.0005", "1.5", "5"], "0.0005", "400", ""),
        dynamic_row("dynamic-fmnist-pixel", "fashion_mnist", "pixel", "linear", ["0.0005", "1.5", "2"], "0.0005", "400", "the original script passed --dataset mnist; fixed"),
        dynamic_row("dynamic-cifar10-pixel", "cifar10", "pixel", "convatt", ["0.1", "1.15", "10"], "0.001", "300", ""),
        dynamic_row("dynamic-ships-grid12", "ships", "subCXLIVdrant", "convatt", ["0.025", "1.15", "9"], "0.0005", "400", "SqueezeNet 1.1: the paper started from ImageNet weights; convert torchvision's to safetensors (the command is in `selmask train --help`, --pretrained) and pass it with --pretrained PATH: the warm-up and the run start from it"),
        dynamic_row("dynamic-ships-grid48", "ships", "sub48drant", "convatt", ["0.025", "1.15", "9"], "0.0005", "400", "SqueezeNet 1.1: the paper started from ImageNet weights; convert torchvision's to safetensors (the command is in `selmask train --help`, --pretrained) and pass it with --pretrained PATH: the warm-up and the run start from it"),
        xor_row("static-xor-cifar10", "cifar10", None, ""),
        xor_row("static-pipeline-cifar10", "cifar10", Some("0.25"), ""),
        xor_row("static-pipeline-svhn", "svhn", Some("0.5"), ""),
        baseline("random-mnist-pixel", "mnist", "random", 784, 422, 50, "removal rate: our choice (Q reaches 0 at the last epoch); the supplement does not list it"),
        baseline("random-fmnist-pixel", "fashion_mnist", "random", 784, 422, 50, "removal rate: our choice (Q reaches 0 at the last epoch); the supplement does not list it"),
        baseline("given-mnist-pixel", "mnist", "given", 784, 422, 50, "importance map from a random forest: importance/mnist.npy (make it with `selmask importance --dataset mnist --out importance/mnist.npy`)"),
        baseline("given-fmnist-pixel", "fashion_mnist", "given", 784, 422, 50, "importance map from a random forest: importance/fashion_mnist.npy (make it with `selmask importance --dataset fashion_mnist --out importance/fashion_mnist.npy`)"),
    ]
}

/// The preset `name`, or an error listing the names.
pub fn find(name: &str) -> Result<Preset, String> {
    presets()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("unknown experiment '{name}'; known: {}", presets().iter().map(|p| p.name).collect::<Vec<_>>().join(", ")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn every_preset_parses_as_a_train_command_and_covers_the_tables() {
        let all = presets();
        // Table 2a has 6 rows, Table 2b 5.
        assert_eq!(all.iter().filter(|p| p.source.starts_with("Table 2a")).count(), 6);
        assert_eq!(all.iter().filter(|p| p.source.starts_with("Table 2b")).count(), 5);
        for p in &all {
            let mut argv = vec!["selmask".to_string(), "train".to_string()];
            argv.extend(p.args.clone());
            let m = Cli::command().try_get_matches_from(&argv).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let cli = Cli::from_arg_matches(&m).unwrap();
            let Command::Train(t) = cli.command else { panic!("{}: not a train command", p.name) };
            let sub = m.subcommand_matches("train").unwrap();
            let (shape, classes, network) = match t.data.dataset.as_str() {
                "mnist" | "fashion_mnist" => ([1, 28, 28], 10, "lenet5"),
                "cifar10" | "svhn" => ([3, 32, 32], 10, "resnet20"),
                "galaxy10" => ([3, 69, 69], 10, "resnet20-s2"),
                "remote" => ([36, 35, 35], 13, "allconv"),
                "ships" => ([3, 384, 384], 2, "squeezenet1_1"),
                other => panic!("{}: unknown dataset {other}", p.name),
            };
            // Every preset builds a valid configuration of the paper's
            // network for its dataset's shape (the given baselines with an
            // importance map of that shape).
            let dir = tempfile::tempdir().unwrap();
            let (t, sub) = if p.name.starts_with("given") {
                let map = dir.path().join("importance.npy");
                crate::masks::importance::write_npy(&map, &shape, &vec![0.5; shape.iter().product()]).unwrap();
                argv = with_flag(argv, "given-mask-path", map.to_str().unwrap());
                let m = Cli::command().try_get_matches_from(&argv).unwrap();
                let Command::Train(t) = Cli::from_arg_matches(&m).unwrap().command else { unreachable!() };
                (t, m.subcommand_matches("train").unwrap().clone())
            } else {
                (t, sub.clone())
            };
            let (config, _) = t.to_config(&sub, shape, classes).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            config.validate().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(config.network.name(), network, "{}", p.name);
            assert_eq!(config.dataset.to_string(), t.data.dataset, "{}", p.name);
            let n_epochs: usize = p.args[p.args.iter().position(|a| a == "--n-epochs").unwrap() + 1].parse().unwrap();
            assert_eq!(config.n_epochs, n_epochs, "{}", p.name);
            let kind = p.name.split('-').next().unwrap();
            let mask_type = if p.name.contains("xor") || p.name.contains("pipeline") { "static" } else { kind };
            assert_eq!(config.mask_type.to_string(), mask_type, "{}", p.name);
            if kind == "dynamic" {
                let Some(crate::masks::MaskConfig::Dynamic(d)) = config.selection_mask() else { panic!("{}: a dynamic mask", p.name) };
                let model = &p.args[p.args.iter().position(|a| a == "--dynamic-mask").unwrap() + 1];
                assert_eq!(d.model.as_str(), model, "{}", p.name);
            }
        }
        // The xor scripts: JPEG levels, with and without the any mask.
        assert_eq!(all.iter().filter(|p| p.source.starts_with("exp_scripts")).count(), 3);
        for (name, any) in [("static-xor-cifar10", false), ("static-pipeline-cifar10", true), ("static-pipeline-svhn", true)] {
            let mut argv = vec!["selmask".to_string(), "train".to_string()];
            argv.extend(find(name).unwrap().with_epochs(2));
            argv.extend(["--network".to_string(), "mlp".to_string()]);
            let m = Cli::command().try_get_matches_from(&argv).unwrap();
            let Command::Train(t) = Cli::from_arg_matches(&m).unwrap().command else { unreachable!() };
            let (c, _) = t.to_config(m.subcommand_matches("train").unwrap(), [3, 32, 32], 10).unwrap();
            assert_eq!(c.xor.as_ref().map(|x| x.versions.quality_levels.clone()), Some(vec![90, 70, 50, 30, 10]), "{name}");
            assert_eq!((c.use_any_mask, c.n_epochs, c.lambda.patience), (any, 2, 10), "{name}");
        }
        assert!(find("static-fmnist-pixel").unwrap().args.contains(&"fashion_mnist".to_string()));
        assert!(find("nope").unwrap_err().contains("static-mnist-pixel"));
        assert_eq!(with_flag(vec!["--n-epochs".into(), "400".into()], "n-epochs", "20"), ["--n-epochs", "20"]);
        // 10 epochs of 422 iterations over 784 cells: one cell every 5 iterations.
        let r = find("random-fmnist-pixel").unwrap().with_epochs(10);
        assert_eq!(r[r.iter().position(|a| a == "--random-change-iter").unwrap() + 1], "5");
    }
}
