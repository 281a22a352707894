use std::collections::BTreeMap;

use super::*;
use crate::cli::train::TrainArgs;
use crate::cli::{Cli, Command};
use crate::training::{MaskType, SelectOn};
use clap::{ArgMatches, CommandFactory, FromArgMatches, parser::ValueSource};

/// `shared/reference/exp-scripts.md` (beside the checkout), row by row, as `selmask train`
/// flags: (script, preset, the script's flags, Table 2a/2b where it differs).
/// Transcribed from the table, not from `presets()`, so the two check each other.
const SCRIPTS: [(&str, &str, &str, &str); 21] = [
    ("static_pixel_mnist", "static-mnist-pixel",
     "--dataset mnist --mask-type static --lambda-init 0.0005 --lambda-factor 1.5 --lambda-patience 5 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     "--lr 0.005"),
    // The script's --dataset mnist was a slip for fashion_mnist.
    ("static_pixel_fashionmnist", "static-fmnist-pixel",
     "--dataset fashion_mnist --mask-type static --lambda-init 0.0005 --lambda-factor 1.5 --lambda-patience 2 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --n-repeats 10",
     "--lambda-patience 5 --lr 0.005"),
    ("static_pixel_cifar10", "static-cifar10-pixel",
     "--dataset cifar10 --mask-type static --lambda-init 1 --lambda-factor 1.05 --lambda-patience 5 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("static_pixel_galaxy10", "static-galaxy10-pixel",
     "--dataset galaxy10 --mask-type static --lambda-init 1 --lambda-factor 1.5 --lambda-patience 2 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("static_channel_remote", "static-remote-channel",
     "--dataset remote --mask-type static --any-granularity channel --lambda-init 0.15 --lambda-factor 1.25 --lambda-patience 10 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     "--lambda-init 0.1"),
    ("static_channel_cifar10", "static-cifar10-channel",
     "--dataset cifar10 --mask-type static --any-granularity channel --lambda-init 1 --lambda-factor 1.25 --lambda-patience 5 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("static_12x12block_svhn", "static-svhn-grid12",
     "--dataset svhn --mask-type static --any-granularity subCXLIVdrant --lambda-init 0.125 --lambda-factor 1.25 --lambda-patience 5 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("static_xor_cifar10", "static-xor-cifar10",
     "--dataset cifar10 --mask-type static --use-any-mask 0 --quality-levels 90 70 50 30 10 --lambda-init 1 --lambda-factor 1.25 --lambda-patience 10 --lr 0.0001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("static_pipeline_cifar10", "static-pipeline-cifar10",
     "--dataset cifar10 --mask-type static --quality-levels 90 70 50 30 10 --any-init-mean 0.25 --lambda-init 1 --lambda-factor 1.25 --lambda-patience 10 --lr 0.0001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("static_pipeline_svhn", "static-pipeline-svhn",
     "--dataset svhn --mask-type static --quality-levels 90 70 50 30 10 --any-init-mean 0.5 --lambda-init 1 --lambda-factor 1.25 --lambda-patience 10 --lr 0.0001 --n-epochs 300 --use-warmup-net 1 --n-repeats 10",
     ""),
    ("dynamic_pixel_mnist", "dynamic-mnist-pixel",
     "--dataset mnist --mask-type dynamic --dynamic-mask linear --lambda-init 0.0005 --lambda-factor 1.5 --lambda-patience 5 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("dynamic_pixel_fashionmnist", "dynamic-fmnist-pixel",
     "--dataset fashion_mnist --mask-type dynamic --dynamic-mask linear --lambda-init 0.0005 --lambda-factor 1.5 --lambda-patience 2 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("dynamic_pixel_cifar10", "dynamic-cifar10-pixel",
     "--dataset cifar10 --mask-type dynamic --dynamic-mask convatt --lambda-init 0.1 --lambda-factor 1.15 --lambda-patience 10 --lr 0.001 --n-epochs 300 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("dynamic_12x12block_ships", "dynamic-ships-grid12",
     "--dataset ships --mask-type dynamic --dynamic-mask convatt --any-granularity subCXLIVdrant --dynamic-h 12 --dynamic-w 12 --batch-size 256 --lambda-init 0.025 --lambda-factor 1.15 --lambda-patience 9 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("dynamic_48x49block_ships", "dynamic-ships-grid48",
     "--dataset ships --mask-type dynamic --dynamic-mask convatt --any-granularity sub48drant --dynamic-h 48 --dynamic-w 48 --batch-size 256 --lambda-init 0.025 --lambda-factor 1.15 --lambda-patience 9 --lr 0.0005 --n-epochs 400 --use-warmup-net 1 --input-drop-upscaling false --n-repeats 10",
     ""),
    ("random_pixel_mnist", "random-mnist-pixel",
     "--dataset mnist --mask-type random --random-change-iter 245 --input-drop-upscaling false --n-repeats 10", ""),
    ("random_pixel_fashionmnist", "random-fmnist-pixel",
     "--dataset fashion_mnist --mask-type random --random-change-iter 245 --input-drop-upscaling false --n-repeats 10", ""),
    ("random_pixel_cifar10", "random-cifar10-pixel", "--dataset cifar10 --mask-type random --random-change-iter 48 --n-repeats 10", ""),
    ("RF_pixel_mnist", "given-mnist-pixel",
     "--dataset mnist --mask-type given --random-change-iter 245 --input-drop-upscaling false --n-repeats 10", ""),
    ("RF_pixel_fmnist", "given-fmnist-pixel",
     "--dataset fashion_mnist --mask-type given --random-change-iter 245 --input-drop-upscaling false --n-repeats 10", ""),
    ("RF_pixel_cifar10", "given-cifar10-pixel", "--dataset cifar10 --mask-type given --random-change-iter 48 --n-repeats 10", ""),
];

/// Flags that `reproduce` adds to every preset (where runs go), not the script's.
const ADDED: [&str; 4] = ["exp-dir", "warmup-dir", "name", "given-mask-dir"];

/// `--flag values...` pairs of a command line.
fn pairs(line: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut key = String::new();
    for token in line.split_whitespace() {
        match token.strip_prefix("--") {
            Some(k) => {
                key = k.to_string();
                out.insert(key.clone(), String::new());
            }
            None => {
                let v = out.get_mut(&key).expect("a value after a flag");
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(token);
            }
        }
    }
    out
}

fn reproduce_args(argv: &[&str]) -> Result<ReproduceArgs, clap::Error> {
    let m = Cli::command().try_get_matches_from(std::iter::once("selmask").chain(["reproduce"]).chain(argv.iter().copied()))?;
    match Cli::from_arg_matches(&m)?.command {
        Command::Reproduce(r) => Ok(r),
        _ => unreachable!(),
    }
}

/// The resolved `train` flags parsed by the real parser.
fn parsed(args: &[String]) -> (TrainArgs, ArgMatches) {
    let argv = ["selmask".to_string(), "train".to_string()].into_iter().chain(args.iter().cloned());
    let m = Cli::command().try_get_matches_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let Command::Train(t) = Cli::from_arg_matches(&m).unwrap().command else { panic!("not a train command") };
    (*t, m.subcommand_matches("train").unwrap().clone())
}

/// The flags set on the command line, as the parser saw them, less those
/// reproduce adds.
fn given_flags(m: &ArgMatches) -> BTreeMap<String, String> {
    let train = <TrainArgs as clap::Args>::augment_args(clap::Command::new("train"));
    train
        .get_arguments()
        .filter(|a| m.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| {
            let long = a.get_long()?.to_string();
            let raw = m.get_raw(a.get_id().as_str())?.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
            (!ADDED.contains(&long.as_str())).then_some((long, raw))
        })
        .collect()
}

fn shape(dataset: &str) -> ([usize; 3], usize) {
    match dataset {
        "mnist" | "fashion_mnist" => ([1, 28, 28], 10),
        "cifar10" | "svhn" => ([3, 32, 32], 10),
        "galaxy10" => ([3, 69, 69], 10),
        "remote" => ([36, 35, 35], 13),
        "ships" => ([3, 384, 384], 2),
        other => panic!("no shape for {other}"),
    }
}

/// Ten importance maps of `dataset` in the authors' names, under `dir`.
fn write_maps(dir: &std::path::Path, dataset: DatasetName, n: usize) {
    let ([c, h, w], _) = shape(dataset.as_str());
    for r in 0..n {
        let values: Vec<f32> = (0..c * h * w).map(|v| ((v * (r + 7)) % 97) as f32).collect();
        crate::masks::importance::write_npy(&rf_map_path(dir, dataset, r), &[c, h, w], &values).unwrap();
    }
}

#[test]
fn every_preset_resolves_to_its_script_row_and_table_values_and_builds_a_config() {
    let maps = tempfile::tempdir().unwrap();
    for d in [DatasetName::Mnist, DatasetName::FashionMnist, DatasetName::Cifar10] {
        write_maps(maps.path(), d, 10);
    }
    let all = presets();
    assert_eq!(all.len(), SCRIPTS.len(), "one preset per script (supernova has no loader)");
    for (script, name, script_flags, table_flags) in SCRIPTS {
        let preset = find(name).unwrap();
        assert_eq!((preset.name, preset.script), (name, script));
        assert_eq!(find(script).unwrap().name, name, "the script name finds the preset");
        let mut variants = vec![("script", pairs(script_flags))];
        if !table_flags.is_empty() {
            let mut table = pairs(script_flags);
            table.extend(pairs(table_flags));
            variants.push(("table", table));
        }
        assert_eq!(preset.table_values.is_empty(), table_flags.is_empty(), "{name}: table differences");
        for (params, expected) in variants {
            let given = maps.path().to_str().unwrap();
            let r = resolve(&reproduce_args(&[name, "--params", params, "--given-mask-dir", given]).unwrap()).unwrap();
            let (t, m) = parsed(&r.args);
            assert_eq!(given_flags(&m), expected, "{name} --params {params}");
            let (shape, classes) = shape(t.data.dataset.as_str());
            let (config, plan) = t.to_config(&m, shape, classes).unwrap_or_else(|e| panic!("{name} --params {params}: {e}"));
            // The facts the issue found wrong, on the built configuration.
            let upscaling = !expected.contains_key("input-drop-upscaling");
            assert_eq!(config.mask.input_drop_upscaling(), upscaling, "{name}");
            let granularity = expected.get("any-granularity").map_or("subpixel", String::as_str);
            assert_eq!(config.mask.granularity(), granularity.parse::<selmask_wire::granularity::Granularity>().unwrap(), "{name}");
            assert_eq!(config.batch_size, expected.get("batch-size").map_or(128, |b| b.parse().unwrap()), "{name}");
            assert_eq!((config.val_split, config.select_on), (0.1, SelectOn::Val), "{name}: our protocol by default");
            assert_eq!(plan.n_repeats, 10, "{name}");
            let suffix = if params == "table" { "-table" } else { "" };
            assert!(plan.experiment_dir.ends_with(format!("{name}{suffix}")), "{name}: {}", plan.experiment_dir.display());
            if t.mask_type == MaskType::Given {
                assert_eq!(plan.repeat_orders.len(), 10, "{name}: one map per repeat");
            }
        }
        if table_flags.is_empty() {
            // Identical when the table agrees; refused when the table has no such row.
            match preset.table {
                Some(_) => assert_eq!(preset.args_for(Params::Table), preset.args_for(Params::Script)),
                None => {
                    let err = resolve(&reproduce_args(&[name, "--params", "table"]).unwrap()).unwrap_err();
                    assert!(err.contains("in neither Table 2a nor 2b") && err.contains(script), "{err}");
                }
            }
        } else {
            let d = preset.table_differences();
            assert!(d.contains("--params table") && d.starts_with(preset.table.unwrap()), "{name}: {d}");
        }
    }
}

#[test]
fn the_paper_protocol_trains_on_everything_and_decides_on_test() {
    let r = resolve(&reproduce_args(&["static-mnist-pixel", "--protocol", "paper", "--warmup-dir", "w"]).unwrap()).unwrap();
    let (t, m) = parsed(&r.args);
    let (config, plan) = t.to_config(&m, [1, 28, 28], 10).unwrap();
    assert_eq!((config.val_split, config.select_on), (0.0, SelectOn::Test));
    assert!(plan.experiment_dir.ends_with("static-mnist-pixel-paper"), "{}", plan.experiment_dir.display());
    // Its own warm-up: one trained on everything has seen our validation items.
    assert_eq!(t.warmup_dir, std::path::Path::new("w/paper-protocol"));
    let r = resolve(&reproduce_args(&["static-fmnist-pixel", "--protocol", "paper", "--params", "table"]).unwrap()).unwrap();
    assert_eq!(flag_value(&r.args, "name"), Some("static-fmnist-pixel-table-paper"));
    assert_eq!((flag_value(&r.args, "lr"), flag_value(&r.args, "val-split")), (Some("0.005"), Some("0")));
}

#[test]
fn overrides_after_the_separator_replace_the_presets_values_once() {
    let r = resolve(&reproduce_args(&["static-xor-cifar10", "--", "--batch-size", "64", "--quality-levels", "50", "--lr=0.01", "-q"]).unwrap())
        .unwrap();
    let (t, _) = parsed(&r.args);
    assert_eq!((t.batch_size, t.quality_levels.clone(), t.lr, t.quiet), (64, vec![50], 0.01, true));
    assert_eq!(r.args.iter().filter(|a| a.starts_with("--quality-levels")).count(), 1);
    assert_eq!(r.args.iter().filter(|a| a.starts_with("--lr")).count(), 1, "{:?}", r.args);
    // The user's value beats reproduce's own options, and negative values pass.
    let r = resolve(&reproduce_args(&["dynamic-ships-grid12", "--n-epochs", "4", "--", "--n-epochs", "2", "--dynamic-h", "-1"]).unwrap()).unwrap();
    let (t, _) = parsed(&r.args);
    assert_eq!((t.n_epochs, t.dynamic_h, t.dynamic_w), (Some(2), -1, 12));
    // An override the parser does not know is refused by it.
    let r = resolve(&reproduce_args(&["static-mnist-pixel", "--", "--no-such-flag", "1"]).unwrap()).unwrap();
    let argv = ["selmask".to_string(), "train".to_string()].into_iter().chain(r.args);
    let err = Cli::command().try_get_matches_from(argv).unwrap_err().to_string();
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn fewer_epochs_remove_cells_faster_so_the_baselines_end_at_the_scripts_q() {
    // 245 iterations over 50 epochs: over 10 epochs one cell every 49.
    let r = resolve(&reproduce_args(&["random-mnist-pixel", "--n-epochs", "10"]).unwrap()).unwrap();
    assert_eq!((flag_value(&r.args, "random-change-iter"), flag_value(&r.args, "n-epochs")), (Some("49"), Some("10")));
    let r = resolve(&reproduce_args(&["static-mnist-pixel", "--n-epochs", "10"]).unwrap()).unwrap();
    assert_eq!(flag_value(&r.args, "random-change-iter"), None);
}

#[test]
fn given_presets_make_their_maps_in_the_experiment_dir_unless_a_dir_is_given() {
    let r = resolve(&reproduce_args(&["given-fmnist-pixel", "--exp-dir", "x"]).unwrap()).unwrap();
    let dir = std::path::Path::new("x/fashion_mnist/given/given-fmnist-pixel/given_masks");
    assert_eq!(r.make_maps_in.as_deref(), Some(dir));
    assert_eq!(flag_value(&r.args, "given-mask-dir"), dir.to_str());
    assert_eq!(rf_map_path(dir, DatasetName::FashionMnist, 0), dir.join("fmnist_rf_1.npy"));
    assert_eq!(rf_map_path(dir, DatasetName::Cifar10, 9), dir.join("cifar_rf_10.npy"));
    let r = resolve(&reproduce_args(&["given-fmnist-pixel", "--given-mask-dir", "mine"]).unwrap()).unwrap();
    assert_eq!((r.make_maps_in, flag_value(&r.args, "given-mask-dir")), (None, Some("mine")));
    let r = resolve(&reproduce_args(&["given-fmnist-pixel", "--", "--given-mask-path", "one.npy"]).unwrap()).unwrap();
    assert_eq!((r.make_maps_in, flag_value(&r.args, "given-mask-dir")), (None, None));
}

#[test]
fn a_given_mask_dir_missing_a_repeats_map_names_the_file() {
    let maps = tempfile::tempdir().unwrap();
    write_maps(maps.path(), DatasetName::Mnist, 2);
    let dir = maps.path().to_str().unwrap();
    let r = resolve(&reproduce_args(&["given-mnist-pixel", "--n-repeats", "3", "--given-mask-dir", dir]).unwrap()).unwrap();
    let (t, m) = parsed(&r.args);
    let err = t.to_config(&m, [1, 28, 28], 10).unwrap_err().to_string();
    assert!(err.contains("mnist_rf_3.npy") && err.contains("run_2"), "{err}");
    // Repeat i runs map i + 1.
    write_maps(maps.path(), DatasetName::Mnist, 3);
    let (config, plan) = t.to_config(&m, [1, 28, 28], 10).unwrap();
    let source = |c: &crate::training::TrainConfig| match &c.schedule.as_ref().unwrap().order {
        crate::masks::scheduled::RemovalOrder::Given { source, .. } => source.clone(),
        other => panic!("{other:?}"),
    };
    assert!(source(&plan.config_for_repeat(&config, 2)).ends_with("mnist_rf_3.npy"));
    assert!(source(&plan.config_for_repeat(&config, 0)).ends_with("mnist_rf_1.npy"));
}

#[test]
fn bad_names_and_choices_are_refused_with_the_valid_ones() {
    let err = resolve(&reproduce_args(&["static-mnist"]).unwrap()).unwrap_err();
    assert!(err.contains("unknown experiment 'static-mnist'") && err.contains("dynamic-ships-grid12") && err.contains("given-cifar10-pixel"), "{err}");
    let err = find("static_channel_supernova").unwrap_err();
    assert!(err.contains("no supernova loader"), "{err}");
    // Refused by the parser, before any preset or file is looked at.
    let err = reproduce_args(&["static-mnist-pixel", "--protocol", "foo"]).unwrap_err().to_string();
    assert!(err.contains("invalid value 'foo' for '--protocol") && err.contains("val, paper"), "{err}");
    let err = reproduce_args(&["static-mnist-pixel", "--params", "foo"]).unwrap_err().to_string();
    assert!(err.contains("invalid value 'foo' for '--params") && err.contains("script, table"), "{err}");
}

#[test]
fn reproduce_help_shows_every_default() {
    let mut cli = Cli::command();
    let sub = cli.find_subcommand_mut("reproduce").unwrap();
    let help = sub.render_long_help().to_string();
    for arg in sub.get_arguments() {
        let takes_value = arg.get_action().takes_values() && !arg.is_positional();
        if takes_value {
            let documented = !arg.get_default_values().is_empty() || arg.get_help().is_some_and(|h| h.to_string().contains("[default"));
            assert!(documented, "--{} shows no default", arg.get_id());
        }
    }
    assert!(help.contains("[default: script]") && help.contains("[default: val]"), "{help}");
}
