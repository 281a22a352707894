//! What each subcommand does, on validated configurations.

pub mod deploy;
pub mod masks_figure;

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::ArgMatches;

use crate::cli::{BackendChoice, PretrainArgs, TrainArgs};
use crate::data::{self, TrainingData};
use crate::report::table::{aggregate, render_text};
use crate::training::progress::{Progress, Verbosity};
use crate::training::run::{LAST_FILE, PreparedData, RUN_OWNER, RunSummary, differing_settings};
use crate::training::pretrain::pretrain;
use selmask_wire::util::{read_json, write_json};

/// The training device of a backend choice (with autodiff).
pub fn device(backend: BackendChoice) -> Device {
    match backend {
        BackendChoice::Flex => Device::flex().autodiff(),
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff(),
    }
}

fn load_dataset(args: &crate::cli::DataArgs) -> Result<TrainingData> {
    let name = args.dataset_name()?;
    data::load_for_training(name, args.data_dir.as_deref(), args.max_per_class, args.stream)
        .with_context(|| format!("loading dataset {name}"))
}

/// Whether `run_dir` holds a finished run.
fn finished(run_dir: &Path) -> Option<RunSummary> {
    read_json::<RunSummary>(&run_dir.join("summary.json"))
        .ok()
        .filter(|s| s.finished())
}

/// `selmask train`.
pub fn train(args: &TrainArgs, matches: &ArgMatches) -> Result<()> {
    let dataset = load_dataset(&args.data)?;
    let (config, plan) = args.to_config(matches, dataset.info().shape, dataset.info().n_classes)?;
    let device = device(args.data.backend);
    let versions = config.xor.as_ref().map(|x| &x.versions);
    // The dataset moves in: it is held once, as stored.
    let data = PreparedData::from_training_data(dataset, config.val_split, config.seed, versions, &device)?;
    config.check_splits(&data)?;
    std::fs::create_dir_all(&plan.experiment_dir)
        .with_context(|| format!("creating {}", plan.experiment_dir.display()))?;
    // The exact command line, as the reference's args.json.
    let argv: Vec<String> = std::env::args().collect();
    write_json(&plan.experiment_dir.join("args.json"), &argv)?;
    let verbosity = if args.quiet { Verbosity::Quiet } else { Verbosity::Normal };
    let xor = versions.map_or(String::new(), |v| format!(", xor over {} versions", v.n_versions()));
    eprintln!(
        "training {} {} ({} mask, {}{xor}) into {}: {} train / {} val / {} test items",
        config.dataset,
        config.network.name(),
        config.mask.granularity(),
        config.mask_type,
        plan.experiment_dir.display(),
        data.train.len,
        data.val.as_ref().map_or(0, |v| v.len),
        data.test.len
    );

    let mut curves = Vec::new();
    for repeat in 0..plan.n_repeats {
        let config = plan.config_for_repeat(&config, repeat);
        let run_dir = plan.experiment_dir.join(format!("run_{repeat}"));
        if plan.slurm_friendly {
            // The claim: only one process creates the directory.
            match std::fs::create_dir(&run_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    eprintln!("run_{repeat}: exists (finished, or claimed by another process), skipped");
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("claiming {}", run_dir.display())),
            }
        } else if std::fs::symlink_metadata(&run_dir).is_ok() && !plan.overwrite {
            match finished(&run_dir) {
                Some(summary) => {
                    // Skipped only if it was trained as asked now.
                    let differing = differing_settings(&run_dir, &config)?;
                    if !differing.is_empty() {
                        bail!(
                            "{} is a finished run with other settings ({}); give this experiment another --name, \
                             or pass --overwrite to replace it",
                            run_dir.display(),
                            differing.join("; ")
                        );
                    }
                    eprintln!("run_{repeat}: already finished with the same settings, skipped (--overwrite redoes it)");
                    curves.push(summary.curve);
                    continue;
                }
                None if plan.resume && run_dir.join(LAST_FILE).is_file() => {}
                None if plan.resume => {
                    // Killed before its first epoch ended: nothing to continue.
                    RUN_OWNER.verify(&run_dir)?;
                    std::fs::remove_dir_all(&run_dir).with_context(|| format!("removing {}", run_dir.display()))?;
                }
                None => bail!(
                    "{} exists but holds no finished run; pass --resume to continue it, or --overwrite to start it again",
                    run_dir.display()
                ),
            }
        } else if std::fs::symlink_metadata(&run_dir).is_ok() {
            // Only a run directory selmask wrote is removed, never a user's.
            RUN_OWNER.verify(&run_dir)?;
            std::fs::remove_dir_all(&run_dir).with_context(|| format!("removing {}", run_dir.display()))?;
        }
        if plan.resume && run_dir.join(LAST_FILE).is_file() {
            eprintln!("run_{repeat}: resuming from {}", run_dir.join(LAST_FILE).display());
        }
        let progress = Progress::new(verbosity, format!("run_{repeat}"));
        let summary = config
            .fit_or_resume(&data, &run_dir, repeat, &device, &progress, plan.resume)
            .with_context(|| format!("training run {}", run_dir.display()))?;
        if plan.n_repeats > 1 {
            println!("\nrun_{repeat} ({:.0} s):\n{}", summary.seconds, render_text(&aggregate(&[summary.curve.clone()])));
        }
        curves.push(summary.curve);
        if plan.slurm_friendly {
            break;
        }
    }
    if curves.is_empty() {
        println!("\nevery run of {} exists already: nothing to do", plan.experiment_dir.display());
        return Ok(());
    }
    let rows = aggregate(&curves);
    println!(
        "\naccuracy vs Q, {} {} ({} runs, checkpoints selected on {:?}):\n{}",
        config.dataset,
        config.mask.granularity(),
        curves.len(),
        config.select_on,
        render_text(&rows)
    );
    Ok(())
}

/// `selmask pretrain`.
pub fn pretrain_cmd(args: &PretrainArgs) -> Result<()> {
    let dataset = load_dataset(&args.data)?;
    let (config, out) = args.to_config(dataset.info().shape, dataset.info().n_classes)?;
    let device = device(args.data.backend);
    let data = PreparedData::from_training_data(dataset, config.val_split, config.seed, None, &device)?;
    let run_dir = args.exp_dir.join(config.dataset.as_str()).join("pretrain").join(format!("seed_{}", config.seed));
    let verbosity = if args.quiet { Verbosity::Quiet } else { Verbosity::Normal };
    let meta = pretrain(&config, &data, &run_dir, &out, &device, &Progress::new(verbosity, "pretrain"))
        .with_context(|| format!("pretraining {} into {}", config.dataset, out.display()))?;
    println!(
        "warm-up network written to {} ({} epochs, val accuracy {}, test accuracy {:.4})",
        out.display(),
        meta.epochs,
        meta.val_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
        meta.test_accuracy
    );
    Ok(())
}

/// `selmask report`.
pub fn report(args: &crate::cli::ReportArgs) -> Result<()> {
    if let Some(b) = args.budgets.iter().find(|b| !(b.is_finite() && **b > 0.0 && **b <= 1.0)) {
        bail!("--budget {b}: must be within (0, 1]");
    }
    if !(args.zoom_q.is_finite() && args.zoom_q > 0.0 && args.zoom_q <= 1.0) {
        bail!("--zoom-q {}: must be within (0, 1]", args.zoom_q);
    }
    let q = args.mask_examples_q_raw;
    if !(q.is_finite() && (0.0..=1.0).contains(&q)) {
        bail!("--mask-examples-q {q}: must be within [0, 1] (0: no mask figures)");
    }
    let options = crate::report::ReportOptions {
        commands: args.commands.clone(),
        notes: args.notes.clone(),
        budgets: args.budgets.clone(),
        zoom_q: args.zoom_q,
        include_unfinished: args.include_unfinished,
    };
    let summary = crate::report::write_report(&args.runs_dir, &args.out, &options)
        .with_context(|| format!("reporting on {}", args.runs_dir.display()))?;
    for d in &summary.datasets {
        println!(
            "{}: {} ({} experiments, {} runs, {} figure files)",
            d.dataset,
            d.markdown.display(),
            d.experiments.len(),
            d.runs,
            d.figures.len()
        );
    }
    for s in &summary.skipped {
        eprintln!("skipped {}: {}", s.dir.display(), s.reason);
    }
    if summary.datasets.is_empty() {
        bail!("no complete run under {}", args.runs_dir.display());
    }
    if let Some(max_q) = args.mask_examples_q() {
        let files = masks_figure::write_mask_figures(&args.runs_dir, &args.out, max_q, args.data_dir.as_deref())?;
        println!("{} example-mask figure files", files.len());
    }
    Ok(())
}

/// `selmask reproduce`.
pub fn reproduce(args: &crate::cli::ReproduceArgs) -> Result<()> {
    use crate::reproduce::{Params, Protocol, presets, resolve, rf_map_path};
    use clap::{CommandFactory, FromArgMatches};
    if args.list {
        for p in presets() {
            // The command each preset runs with the defaults (script, val).
            let shown = crate::cli::ReproduceArgs { name: Some(p.name.to_string()), list: false, params: Params::Script, protocol: Protocol::Val, ..args.clone() };
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
    let parse = |argv: Vec<String>| -> Result<(crate::cli::Command, ArgMatches)> {
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
    let dataset = t.data.dataset_name()?;
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
                    importance(&imp)?;
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
            pretrain_cmd(&p)?;
        }
    }
    train(&t, m.subcommand_matches("train").expect("train matches"))
}

/// `selmask importance`.
pub fn importance(args: &crate::cli::ImportanceArgs) -> Result<()> {
    use crate::masks::forest::{ForestConfig, forest_importance};
    let name = args.dataset;
    let dataset = data::load(name, args.data_dir.as_deref()).with_context(|| format!("loading dataset {name}"))?;
    let config = ForestConfig {
        trees: args.trees,
        max_depth: args.max_depth,
        samples: args.samples,
        feature_proportion: args.feature_proportion,
        seed: args.seed,
    };
    let start = std::time::Instant::now();
    let imp = forest_importance(&dataset.train, &config)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::masks::importance::write_npy(&args.out, &dataset.info.shape, &imp)?;
    let mut order: Vec<usize> = (0..imp.len()).collect();
    order.sort_by(|&a, &b| imp[b].total_cmp(&imp[a]));
    println!(
        "importance of {} input values ({} trees, depth <= {}, {} items) written to {} in {:.1} s; most important values: {:?}",
        imp.len(),
        config.trees,
        config.max_depth,
        if config.samples == 0 { dataset.train.len() } else { config.samples.min(dataset.train.len()) },
        args.out.display(),
        start.elapsed().as_secs_f64(),
        &order[..order.len().min(8)]
    );
    Ok(())
}
