//! `selmask reproduce`: the paper's experiments by name (the presets are
//! [`crate::reproduce`]), their flags and the action.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{ArgMatches, Args};

/// `selmask reproduce`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Any `selmask train` flag can follow `--` and replaces the preset's value, e.g. \
`selmask reproduce static-mnist-pixel -- --batch-size 64 --n-epochs 20`.")]
pub struct ReproduceArgs {
    /// The experiment: a preset name or the authors' script name (see --list).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// List the experiments with their full commands and where the supplement's tables differ.
    #[arg(long)]
    pub list: bool,
    /// Which parameters to run: the authors' script, or the supplement's Table 2a/2b where it differs.
    #[arg(long, value_enum, default_value_t = crate::reproduce::Params::Script)]
    pub params: crate::reproduce::Params,
    /// Which protocol: val (ours: a validation split decides) or paper (the whole training set is trained on and the test set decides, as the authors did).
    #[arg(long, value_enum, default_value_t = crate::reproduce::Protocol::Val)]
    pub protocol: crate::reproduce::Protocol,
    /// Override the preset's epochs (a reduced schedule for a CPU; the baselines' removal interval scales with it) [default: the preset's].
    #[arg(long)]
    pub n_epochs: Option<usize>,
    /// Override the preset's repeats [default: the preset's, 10].
    #[arg(long)]
    pub n_repeats: Option<usize>,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where runs go (<exp-dir>/<dataset>/<mask-type>/<experiment>/run_<i>; the experiment is the preset's name, with -table and -paper for the non-default --params and --protocol).
    #[arg(long, default_value = "./runs")]
    pub exp_dir: PathBuf,
    /// Warm-up networks (the paper protocol's under <warmup-dir>/paper-protocol); one is pretrained (10 epochs, with the
    /// experiment's network and data flags) when missing.
    #[arg(long, default_value = "models")]
    pub warmup_dir: PathBuf,
    /// Given (RF) baselines: a directory of importance maps, <ds>_rf_<i>.npy for i = 1..n-repeats (the authors' names: ds mnist, fmnist, cifar); run_<i-1> uses map i [default: <experiment>/given_masks, where missing maps are made with `selmask importance` under seeds 1..n and reused later].
    #[arg(long)]
    pub given_mask_dir: Option<PathBuf>,
    /// squeezenet1_1 experiments (ships): start from torchvision's ImageNet
    /// weights in this local safetensors file, as the paper; passed to the
    /// warm-up and the run (see `selmask train --help`, --pretrained) [default: none, random initialisation].
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Ships experiments: decode each batch from the image files instead of loading them all (passed to the warm-up and the run; see `selmask train --help`, --stream).
    #[arg(long)]
    pub stream: bool,
    /// Print the `selmask train` command and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Print only errors and the results.
    #[arg(long, short)]
    pub quiet: bool,
    /// `selmask train` flags after `--`, replacing the preset's values of those flags.
    #[arg(last = true, value_name = "TRAIN FLAGS")]
    pub train_overrides: Vec<String>,
}

/// `selmask reproduce`.
pub fn run(args: &ReproduceArgs) -> anyhow::Result<()> {
    use crate::reproduce::{Params, Protocol, presets, resolve, rf_map_path};
    use clap::{CommandFactory, FromArgMatches};
    if args.list {
        for p in presets() {
            // The command each preset runs with the defaults (script, val).
            let shown = ReproduceArgs { name: Some(p.name.to_string()), list: false, params: Params::Script, protocol: Protocol::Val, ..args.clone() };
            let resolved = resolve(&shown).map_err(anyhow::Error::msg)?;
            let table = p.table.map_or(String::new(), |t| format!(", {t}"));
            println!("{} (exp_scripts/{}{table})\n  selmask train {}", p.name, p.script, resolved.args.join(" "));
            let differences = p.table_differences();
            if !differences.is_empty() {
                println!("  {differences}");
            }
            if !p.note.is_empty() {
                println!("  note: {}", p.note);
            }
        }
        return Ok(());
    }
    let resolved = resolve(args).map_err(anyhow::Error::msg)?;
    let preset = &resolved.preset;
    let parse = |argv: Vec<String>| -> anyhow::Result<(crate::cli::Command, ArgMatches)> {
        let m = crate::cli::Cli::command().try_get_matches_from(argv)?;
        Ok((crate::cli::Cli::from_arg_matches(&m)?.command, m))
    };
    let argv: Vec<String> = ["selmask", "train"].iter().map(|s| s.to_string()).chain(resolved.args.clone()).collect();
    // Overrides are parsed before anything is printed or read.
    let (crate::cli::Command::Train(t), m) = parse(argv).context("the overrides after --")? else {
        bail!("preset {} is not a train command", preset.name)
    };
    println!("{}: selmask train {}", preset.name, resolved.args.join(" "));
    let differences = preset.table_differences();
    if !differences.is_empty() {
        println!("  {differences}");
    }
    if !preset.note.is_empty() {
        println!("  note: {}", preset.note);
    }
    let dataset = t.data.dataset;
    if let Some(dir) = &t.given_mask_dir {
        let missing: Vec<usize> = (0..t.n_repeats).filter(|&r| !rf_map_path(dir, dataset, r).is_file()).collect();
        match (&resolved.make_maps_in, missing.first()) {
            (_, None) => {}
            (Some(_), Some(_)) if args.dry_run => {
                println!("  {} importance maps to make in {} first (selmask importance, seeds {:?})", missing.len(), dir.display(), missing.iter().map(|r| r + 1).collect::<Vec<_>>());
            }
            (Some(_), Some(_)) => {
                for &r in &missing {
                    let out = rf_map_path(dir, dataset, r);
                    println!("no importance map at {}: making one (selmask importance, seed {})", out.display(), r + 1);
                    let mut argv = vec!["selmask".to_string(), "importance".into(), "--dataset".into(), dataset.to_string()];
                    argv.extend(["--out".into(), out.display().to_string(), "--seed".into(), (r + 1).to_string()]);
                    if let Some(d) = &t.data.data_dir {
                        argv.extend(["--data-dir".into(), d.display().to_string()]);
                    }
                    let (crate::cli::Command::Importance(imp), _) = parse(argv)? else { unreachable!("an importance command line") };
                    super::importance::run(&imp)?;
                }
            }
            (None, Some(&r)) => bail!(
                "--given-mask-dir {}: no importance map {} for run_{r} (one <ds>_rf_<i>.npy per repeat, i = 1..{})",
                dir.display(),
                rf_map_path(dir, dataset, r).display(),
                t.n_repeats
            ),
        }
    }
    if args.dry_run {
        return Ok(());
    }
    if t.use_warmup_net {
        let warmup = crate::training::checkpoint::warmup_path(&t.warmup_dir, dataset);
        if !warmup.exists() {
            println!("no warm-up network at {}: pretraining one (10 epochs)", warmup.display());
            // The warm-up's data flags are the run's own (network,
            // --pretrained weights, data dir, augmentation, sampling,
            // --max-per-class, the protocol's --val-split), so the warm-up
            // network is the one the run will ask for; the rest are
            // pretrain's defaults.
            let pre = vec!["selmask".to_string(), "pretrain".into(), "--dataset".into(), dataset.to_string()];
            let (crate::cli::Command::Pretrain(mut p), _) = parse(pre)? else { unreachable!("a pretrain command line") };
            p.data = t.data.clone();
            p.warmup_dir = t.warmup_dir.clone();
            p.exp_dir = t.exp_dir.clone();
            p.quiet = t.quiet;
            super::pretrain::run(&p)?;
        }
    }
    super::train::run(&t, m.subcommand_matches("train").expect("train matches"))
}
