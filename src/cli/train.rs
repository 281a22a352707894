//! `selmask train`: its flags, their conversion into a [`TrainConfig`]
//! (checked once, in [`TrainArgs::to_config`]), the experiment's directory
//! and name, and the action.
//!
//! Flag names and defaults follow the paper's `create_mask.py`, so its
//! commands translate one to one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{ArgAction, ArgMatches, Args};
use clap::parser::ValueSource;

use crate::data::DatasetName;
use crate::error::{Error, Result};
use crate::masks::MaskConfig;
use crate::masks::dynamic::DynamicMaskConfig;
use crate::masks::dynamic::models::MaskModelKind;
use crate::masks::schedule::{LambdaScheduleConfig, TauScheduleConfig};
use crate::masks::scheduled::{CellScheduleConfig, RemovalOrder};
use crate::masks::static_mask::StaticMaskConfig;
use crate::masks::xor::{XorConfig, XorDynamicConfig};
use crate::report::table::{aggregate, render_text};
use crate::training::{MaskType, SelectOn, TrainConfig};
use crate::training::optim::OptimConfig;
use crate::training::progress::{Progress, Verbosity};
use crate::training::run::{differing_settings, LAST_FILE, PreparedData, RUN_OWNER, RunSummary};
use selmask_wire::granularity::Granularity;
use selmask_wire::util::{read_json, write_json};
use super::{DataArgs, device, load_dataset, parse_bool};

/// `selmask train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Mask type: static, dynamic, random or given.
    #[arg(long)]
    pub mask_type: MaskType,
    /// Training batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Print the running loss, and log the batch's losses to TensorBoard, every this many iterations; logging only: a --resume may change it [default: 140, the paper's].
    #[arg(long)]
    pub log_iter: Option<usize>,
    /// Write a TensorBoard event file into each run directory (train/ losses every --log-iter iterations; eval/ metrics and the mask as an image every epoch). Logging only: a --resume may change it.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub tensorboard: bool,
    /// Learning rate of the mask.
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    pub lr: f64,
    /// Learning rate of the prediction network.
    #[arg(long, default_value_t = 0.001, allow_negative_numbers = true)]
    pub lr_net: f64,
    /// Initial temperature tau of the mask's sigmoid.
    #[arg(long, default_value_t = 1.0)]
    pub tau_init: f64,
    /// Minimal temperature tau.
    #[arg(long, default_value_t = 1.0)]
    pub tau_min: f64,
    /// Per-epoch factor of tau (<= 1).
    #[arg(long, default_value_t = 1.0)]
    pub tau_factor: f64,
    /// Keep the best checkpoint in each Q interval of this width (0-1].
    #[arg(long, default_value_t = 0.05)]
    pub checkpoint_qloss_interval: f64,
    /// How often the experiment is repeated (run_0, run_1, ...; seeds --seed + i).
    #[arg(long, default_value_t = 30)]
    pub n_repeats: usize,
    /// Epochs per run [default: the paper's: 50 for (f-)mnist, 100 for cifar10/svhn/galaxy10, 200 for remote/ships].
    #[arg(long)]
    pub n_epochs: Option<usize>,
    /// Epochs without Q improvement tolerated before lambda grows [default: 1, the paper's].
    #[arg(long)]
    pub lambda_patience: Option<usize>,
    /// Factor by which lambda grows on a plateau.
    #[arg(long, default_value_t = 1.25, allow_negative_numbers = true)]
    pub lambda_factor: f64,
    /// Initial lambda, the weight of Q in the loss.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub lambda_init: f64,
    /// Q must fall by more than this (absolute) to count as an improvement.
    #[arg(long, default_value_t = 0.0025)]
    pub lambda_threshold: f64,
    /// Budget-targeted training: drive lambda (dual ascent) and shift the mask's logits so that Q ends in [this - 0.02, this], and stop once it is there and accuracy settles; dynamic masks then learn their per-cell bias unless --dynamic-learn-static 0 [default: off, the paper's plateau schedule].
    #[arg(long, allow_negative_numbers = true)]
    pub target_q: Option<f64>,
    /// Budget-targeted training: epochs within budget without accuracy gain before stopping.
    #[arg(long, default_value_t = 5)]
    pub target_q_patience: usize,
    /// Epochs after a lambda increase in which plateaus are ignored [default: epochs for tau to anneal to tau-min, as the paper].
    #[arg(long)]
    pub lambda_cooldown: Option<usize>,
    /// Use the selection ("any") mask at all.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub use_any_mask: bool,
    /// Rescale masked inputs by the kept fraction, like dropout.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub input_drop_upscaling: bool,
    /// Initial mean of the mask logits (3: sigmoid 0.95, everything selected).
    #[arg(long, default_value_t = 3.0)]
    pub any_init_mean: f64,
    /// Standard deviation of the initial mask logits.
    #[arg(long, default_value_t = 0.01)]
    pub any_init_std: f64,
    /// What one mask cell covers: subpixel, pixel, channel, version, quad(sub)pixel,
    /// (sub)quadrant, (sub)nondrant, (sub)5drant, (sub)CXLIVdrant, (sub)48drant,
    /// or grid:N, subgrid:N, block:N, subblock:N.
    #[arg(long, default_value = "subpixel")]
    pub any_granularity: Granularity,
    /// Xor (version) selection: JPEG quality levels (1-100) stacked as versions of every input, e.g. 90 70 50 30 10; with --use-any-mask 1 the paper's pipeline [default: none].
    #[arg(long, num_args = 1.., allow_negative_numbers = true)]
    pub quality_levels: Vec<i64>,
    /// Xor selection: widths of thumbnail versions, one per thumbnail (-1: the full width) [default: none].
    #[arg(long, num_args = 1.., allow_negative_numbers = true)]
    pub thumb_w: Vec<i64>,
    /// Xor selection: heights of thumbnail versions, as many as --thumb-w (-1: the full height) [default: none].
    #[arg(long, num_args = 1.., allow_negative_numbers = true)]
    pub thumb_h: Vec<i64>,
    /// Xor selection: what one cell of the JPEG-level choice covers (names as --any-granularity).
    #[arg(long, default_value = "version")]
    pub fmap_granularity: Granularity,
    /// Xor selection: what one cell of the thumbnail choice covers (names as --any-granularity).
    #[arg(long, default_value = "version")]
    pub thumb_granularity: Granularity,
    /// Dynamic masks: the mask model g (linear, mlp, conv, convatt, smallconvatt, convnet, unet, att).
    #[arg(long, default_value = "linear")]
    pub dynamic_mask: MaskModelKind,
    /// Dynamic masks: height of the thumbnail the server's mask model sees (-1: full size).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub dynamic_h: i64,
    /// Dynamic masks: width of the thumbnail the server's mask model sees (-1: full size).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub dynamic_w: i64,
    /// Dynamic masks: also learn a per-cell bias b (else b stays at --any-init-mean) [default: on with --target-q, off otherwise (the paper's). A budget needs it: the linear g has no bias, so on zero-mean inputs W·x is negative for at most about half of them and Q stays near 0.5 whatever λ (measured on the synthetic data)].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    pub dynamic_learn_static: Option<bool>,
    /// Dynamic masks: learn the mask model g (else g stays zero).
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub dynamic_learn_dynamic: bool,
    /// Random and given baselines: cells removed at each change.
    #[arg(long, default_value_t = 1)]
    pub random_num_del: usize,
    /// Random and given baselines: training iterations between changes.
    #[arg(long, default_value_t = 1)]
    pub random_change_iter: usize,
    /// Given baseline: importance map (NPY, input [C,H,W] or mask [c,h,w] shape); least important cells go first.
    #[arg(long, default_value = "mask.npy")]
    pub given_mask_path: PathBuf,
    /// Given baseline: one importance map per repeat instead, <ds>_rf_<i>.npy in this directory for i = 1..n-repeats (the authors' given_masks/ names: ds mnist, fmnist, cifar, else the dataset's name); run_<i-1> uses map i [default: none, --given-mask-path for every repeat].
    #[arg(long, conflicts_with = "given_mask_path")]
    pub given_mask_dir: Option<PathBuf>,
    /// Start from the warm-up network (and its optimiser state) of `selmask pretrain`.
    #[arg(long, default_value = "false", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub use_warmup_net: bool,
    /// Directory of warm-up files (<dataset>.warmup).
    #[arg(long, default_value = "models")]
    pub warmup_dir: PathBuf,
    /// Start from the network and mask of a checkpoint (a .ckpt file, or a run directory with --init-max-q), e.g. to fine-tune one point of a curve.
    #[arg(long)]
    pub init_checkpoint: Option<PathBuf>,
    /// With a run directory as --init-checkpoint: take its best-validation checkpoint with Q at most this.
    #[arg(long)]
    pub init_max_q: Option<f64>,
    /// Keep the mask fixed and train only the network (with --init-checkpoint: fine-tune one point of a curve).
    #[arg(long)]
    pub freeze_mask: bool,
    /// Where runs are written: <exp-dir>/<dataset>/<mask-type>/<name>/run_<i>/.
    #[arg(long, default_value = "./runs")]
    pub exp_dir: PathBuf,
    /// Name of the experiment directory [default: the non-default flags, or "default"].
    #[arg(long)]
    pub name: Option<String>,
    /// Which split picks each Q interval's checkpoint and drives lambda: val, or test (the paper's protocol).
    #[arg(long, default_value = "val")]
    pub select_on: SelectOn,
    /// Base random seed (repeat i uses seed + i; the validation split uses seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluation batch size (speed only).
    #[arg(long, default_value_t = 1000)]
    pub eval_batch_size: usize,
    /// Redo runs whose directory already exists (default: finished runs are skipped). Only run directories selmask wrote are removed.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue unfinished runs of the experiment from their last epoch (run_<i>/last.ckpt: network, mask, optimisers, schedules); the flags must be those the runs were started with. Finished runs are skipped.
    #[arg(long)]
    pub resume: bool,
    /// Run one repeat and stop, as the paper's --slurm-friendly: claim the first run_<i> that does not exist yet (created exclusively, so processes started together on one experiment never share a run), train it, and exit; existing runs are skipped.
    #[arg(long)]
    pub slurm_friendly: bool,
    /// Print only errors and the final table.
    #[arg(long, short)]
    pub quiet: bool,
}

impl TrainArgs {
    /// `--dynamic-learn-static`, or its default: on with `--target-q`.
    fn learn_static(&self) -> bool {
        self.dynamic_learn_static.unwrap_or(self.target_q.is_some())
    }
}

/// Dataset defaults of the paper's code (experiments.py).
struct PaperDefaults {
    log_iter: usize,
    lambda_patience: usize,
    n_epochs: usize,
}

fn paper_defaults(dataset: DatasetName) -> PaperDefaults {
    // Every dataset of experiments.py logs every 140 iterations with a
    // lambda patience of 1; epochs differ. Synthetic borrows mnist's.
    let n_epochs = match dataset {
        DatasetName::Mnist | DatasetName::FashionMnist | DatasetName::Synthetic => 50,
        DatasetName::Cifar10 | DatasetName::Svhn | DatasetName::Galaxy10 => 100,
        DatasetName::Remote | DatasetName::Ships => 200,
    };
    PaperDefaults { log_iter: 140, lambda_patience: 1, n_epochs }
}

/// Flags that do not change what is trained, left out of derived names.
const NAME_IGNORED: [&str; 15] = [
    "dataset", "mask_type", "exp_dir", "data_dir", "n_repeats", "name", "quiet", "overwrite", "eval_batch_size",
    "backend", "log_iter", "warmup_dir", "resume", "slurm_friendly", "tensorboard",
];

/// Derives the experiment name from the flags given on the command line,
/// as the reference: sorted `key-value` pairs, or `default`.
pub fn derived_name(matches: &ArgMatches) -> String {
    // Only real arguments (not the ids of flattened groups).
    let command = <TrainArgs as Args>::augment_args(clap::Command::new("train"));
    let mut parts: Vec<String> = command
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_string())
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .filter(|id| !NAME_IGNORED.contains(&id.as_str()))
        .filter_map(|id| {
            let raw = matches.get_raw(&id)?.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",");
            let value = if raw.is_empty() { "true".to_string() } else { raw };
            Some(format!("{id}-{value}"))
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        "default".into()
    } else {
        parts.join("_").replace(['/', '\\', ' '], "-")
    }
}

/// Where runs of `args` go, and how many.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// `<exp-dir>/<dataset>/<mask-type>/<name>`.
    pub experiment_dir: PathBuf,
    /// Repeats.
    pub n_repeats: usize,
    /// Redo existing runs.
    pub overwrite: bool,
    /// Continue unfinished runs from their resume state.
    pub resume: bool,
    /// Claim and train one free repeat, then stop.
    pub slurm_friendly: bool,
    /// The given baseline with --given-mask-dir: repeat i's removal order
    /// (empty otherwise: every repeat runs the configuration as it is).
    pub repeat_orders: Vec<RemovalOrder>,
}

impl RunPlan {
    /// The configuration of repeat `repeat`: `config` with that repeat's
    /// importance map where there is one per repeat.
    pub fn config_for_repeat(&self, config: &TrainConfig, repeat: usize) -> TrainConfig {
        let mut config = config.clone();
        if let (Some(order), Some(schedule)) = (self.repeat_orders.get(repeat), config.schedule.as_mut()) {
            schedule.order = order.clone();
        }
        config
    }
}

/// A size flag: -1 for the full size, else positive.
fn side(v: i64, full: usize, flag: &'static str) -> Result<usize> {
    match v {
        -1 => Ok(full),
        v if v > 0 => Ok(v as usize),
        v => Err(Error::config(flag, v, "must be a positive size, or -1 for the full size")),
    }
}

impl TrainArgs {
    /// The server's thumbnail of dynamic masks (`None`: the full input).
    fn dynamic_server_hw(&self, shape: [usize; 3]) -> Result<Option<[usize; 2]>> {
        let sh = side(self.dynamic_h, shape[1], "dynamic-h")?;
        let sw = side(self.dynamic_w, shape[2], "dynamic-w")?;
        Ok(([sh, sw] != [shape[1], shape[2]]).then_some([sh, sw]))
    }

    /// Xor selection from --quality-levels and --thumb-w/--thumb-h (`None`
    /// when neither is given; the granularity flags are checked anyway).
    fn xor_config(&self, mask_type: MaskType, shape: [usize; 3]) -> Result<Option<XorConfig>> {
        let (fmap_granularity, thumb_granularity) = (self.fmap_granularity, self.thumb_granularity);
        if self.thumb_w.len() != self.thumb_h.len() {
            return Err(Error::config(
                "thumb-w/thumb-h",
                format!("{} widths, {} heights", self.thumb_w.len(), self.thumb_h.len()),
                "give one height per width",
            ));
        }
        if self.quality_levels.is_empty() && self.thumb_w.is_empty() {
            return Ok(None);
        }
        let quality_levels = self
            .quality_levels
            .iter()
            .map(|&q| u8::try_from(q).ok().filter(|q| (1..=100).contains(q)).ok_or_else(|| Error::config("quality-levels", q, "jpeg quality must be within 1..=100")))
            .collect::<Result<Vec<u8>>>()?;
        let thumbs = self
            .thumb_w
            .iter()
            .zip(&self.thumb_h)
            .map(|(&w, &h)| Ok([side(h, shape[1], "thumb-h")?, side(w, shape[2], "thumb-w")?]))
            .collect::<Result<Vec<[usize; 2]>>>()?;
        let dynamic = match mask_type {
            MaskType::Dynamic => Some(XorDynamicConfig {
                model: self.dynamic_mask,
                server_hw: self.dynamic_server_hw(shape)?,
                learn_static: self.learn_static(),
                learn_dynamic: self.dynamic_learn_dynamic,
            }),
            _ => None,
        };
        Ok(Some(XorConfig {
            versions: crate::data::versions::VersionsConfig { quality_levels, thumbs },
            input_shape: shape,
            fmap_granularity,
            thumb_granularity,
            // The reference's fixed init_std of xor masks.
            init_std: 0.01,
            dynamic,
        }))
    }

    /// The mask of `mask_type` on inputs of `shape`.
    fn mask_config(&self, mask_type: MaskType, shape: [usize; 3], granularity: Granularity) -> Result<MaskConfig> {
        if mask_type == MaskType::Dynamic {
            return Ok(MaskConfig::Dynamic(DynamicMaskConfig {
                input_shape: shape,
                granularity,
                model: self.dynamic_mask,
                server_hw: self.dynamic_server_hw(shape)?,
                learn_static: self.learn_static(),
                learn_dynamic: self.dynamic_learn_dynamic,
                init_mean: self.any_init_mean,
                init_std: self.any_init_std,
                input_drop_upscaling: self.input_drop_upscaling,
            }));
        }
        Ok(MaskConfig::Static(StaticMaskConfig {
            input_shape: shape,
            granularity,
            init_mean: self.any_init_mean,
            init_std: self.any_init_std,
            input_drop_upscaling: self.input_drop_upscaling,
        }))
    }

    /// The importance map of repeat `repeat` (0-based) of the given
    /// baseline: --given-mask-path, or map `repeat + 1` of --given-mask-dir
    /// (which must exist).
    fn given_mask_path(&self, repeat: usize) -> Result<PathBuf> {
        let Some(dir) = &self.given_mask_dir else { return Ok(self.given_mask_path.clone()) };
        let path = crate::reproduce::rf_map_path(dir, self.data.dataset, repeat);
        if !path.is_file() {
            return Err(Error::config(
                "given-mask-dir",
                dir.display(),
                format!("no importance map {} for run_{repeat} (one map per repeat, i = 1..{})", path.display(), self.n_repeats),
            ));
        }
        Ok(path)
    }

    /// The given baseline's removal order from the importance map `path`.
    fn given_order(&self, path: &std::path::Path, shape: [usize; 3], granularity: Granularity) -> Result<RemovalOrder> {
        let layout = granularity.layout(shape)?;
        Ok(RemovalOrder::Given {
            importance: crate::masks::importance::read_cell_importance(path, &layout)?,
            source: path.to_path_buf(),
        })
    }

    /// The removal schedule of the random and given baselines.
    fn schedule_config(&self, mask_type: MaskType, shape: [usize; 3], granularity: Granularity) -> Result<Option<CellScheduleConfig>> {
        if matches!(mask_type, MaskType::Random | MaskType::Given) {
            if self.random_num_del == 0 {
                return Err(Error::config("random-num-del", 0, "must be at least 1 (cells removed per change)"));
            }
            if self.random_change_iter == 0 {
                return Err(Error::config("random-change-iter", 0, "must be at least 1 (iterations between changes)"));
            }
        }
        let order = match mask_type {
            MaskType::Random => RemovalOrder::Random { seed: self.seed },
            MaskType::Given => self.given_order(&self.given_mask_path(0)?, shape, granularity)?,
            MaskType::Static | MaskType::Dynamic => return Ok(None),
        };
        Ok(Some(CellScheduleConfig { order, num_del: self.random_num_del, change_iter: self.random_change_iter }))
    }

    /// Turns the arguments into a validated configuration and a run plan.
    /// `shape` and `n_classes` come from the loaded dataset.
    pub fn to_config(&self, matches: &ArgMatches, shape: [usize; 3], n_classes: usize) -> Result<(TrainConfig, RunPlan)> {
        let dataset = self.data.dataset;
        self.data.check_val_split()?;
        let mask_type = self.mask_type;
        let defaults = paper_defaults(dataset);
        let granularity = self.any_granularity;
        let tau = TauScheduleConfig { init: self.tau_init, min: self.tau_min, factor: self.tau_factor };
        tau.validate()?;
        let lambda = LambdaScheduleConfig {
            init: self.lambda_init,
            factor: self.lambda_factor,
            patience: self.lambda_patience.unwrap_or(defaults.lambda_patience),
            threshold: self.lambda_threshold,
            cooldown: self.lambda_cooldown.unwrap_or_else(|| tau.anneal_epochs()),
        };
        let optim = OptimConfig { lr_net: self.lr_net, lr_mask: self.lr, ..OptimConfig::default() };
        let warmup = self
            .use_warmup_net
            .then(|| crate::training::checkpoint::warmup_path(&self.warmup_dir, dataset));
        let config = TrainConfig {
            dataset,
            network: self.data.network(shape, n_classes)?,
            mask_type,
            use_any_mask: self.use_any_mask,
            mask: self.mask_config(mask_type, shape, granularity)?,
            xor: self.xor_config(mask_type, shape)?,
            schedule: self.schedule_config(mask_type, shape, granularity)?,
            batch_size: self.batch_size,
            eval_batch_size: self.eval_batch_size,
            n_epochs: self.n_epochs.unwrap_or(defaults.n_epochs),
            optim,
            lambda,
            target_q: self
                .target_q
                .map(|q| crate::training::budget::TargetQConfig { patience: self.target_q_patience, ..crate::training::budget::TargetQConfig::new(q) }),
            tau,
            checkpoint_qloss_interval: self.checkpoint_qloss_interval,
            val_split: self.data.val_split,
            select_on: self.select_on,
            seed: self.seed,
            log_iter: self.log_iter.unwrap_or(defaults.log_iter),
            tensorboard: self.tensorboard,
            warmup,
            init_checkpoint: self.init_checkpoint.as_deref().map(|p| resolve_checkpoint(p, self.init_max_q)).transpose()?,
            freeze_mask: self.freeze_mask,
            augment: self.data.augment_config(dataset)?,
            sampling: self.data.sampling(dataset)?,
        };
        config.validate()?;
        if self.n_repeats == 0 {
            return Err(Error::config("n-repeats", 0, "must be > 0"));
        }
        let name = match &self.name {
            Some(n) if n.is_empty() || n.contains(['/', '\\']) || n == "." || n == ".." => {
                return Err(Error::config("name", n, "must be a plain directory name"));
            }
            Some(n) => n.clone(),
            None => derived_name(matches),
        };
        // One removal order per repeat from --given-mask-dir, every map read
        // (and checked) before the first run starts.
        let repeat_orders = match (&self.given_mask_dir, mask_type) {
            (Some(_), MaskType::Given) => (0..self.n_repeats)
                .map(|r| self.given_order(&self.given_mask_path(r)?, shape, granularity))
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let plan = RunPlan {
            experiment_dir: self.exp_dir.join(dataset.as_str()).join(mask_type.to_string()).join(name),
            n_repeats: self.n_repeats,
            overwrite: self.overwrite,
            resume: self.resume,
            slurm_friendly: self.slurm_friendly,
            repeat_orders,
        };
        Ok((config, plan))
    }
}

/// A checkpoint file as given, or the best checkpoint of a run directory
/// within a Q budget.
pub fn resolve_checkpoint(path: &std::path::Path, max_q: Option<f64>) -> Result<PathBuf> {
    if path.is_file() {
        if max_q.is_some() {
            return Err(Error::config("init-max-q", max_q.unwrap_or_default(), "only applies to a run directory"));
        }
        return Ok(path.to_path_buf());
    }
    let Some(max_q) = max_q else {
        return Err(Error::config(
            "init-checkpoint",
            path.display(),
            "not a checkpoint file; for a run directory also give --init-max-q",
        ));
    };
    let summary: crate::training::run::RunSummary = selmask_wire::util::read_json(&path.join("summary.json"))?;
    let point = summary.curve.best_within(max_q).ok_or_else(|| {
        Error::config("init-max-q", max_q, format!("no checkpoint of {} has Q <= {max_q}", path.display()))
    })?;
    Ok(path.join(&point.checkpoint))
}

/// Whether `run_dir` holds a finished run.
fn finished(run_dir: &Path) -> Option<RunSummary> {
    read_json::<RunSummary>(&run_dir.join("summary.json"))
        .ok()
        .filter(|s| s.finished())
}

/// `selmask train`.
pub fn run(args: &TrainArgs, matches: &ArgMatches) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::data::augment::AugmentConfig;
    use crate::data::sampling::Sampling;
    use crate::models::NetworkConfig;
    use clap::{CommandFactory, FromArgMatches};

    fn train(args: &[&str]) -> (TrainArgs, ArgMatches) {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let sub = matches.subcommand_matches("train").unwrap().clone();
        match cli.command {
            Command::Train(a) => (*a, sub),
            _ => unreachable!(),
        }
    }

    /// The message of clap's refusal of `args` (a value that fails its
    /// flag's parser, before anything is read).
    fn refused(args: &[&str]) -> String {
        Cli::command().try_get_matches_from(args).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn paper_flags_parse_with_paper_defaults() {
        let (a, m) = train(&["selmask", "train", "--dataset", "fashion_mnist", "--mask-type", "static"]);
        assert_eq!((a.batch_size, a.n_repeats, a.lambda_factor, a.lambda_init), (128, 30, 1.25, 1.0));
        assert!(a.use_any_mask && a.input_drop_upscaling && !a.use_warmup_net);
        let (c, plan) = a.to_config(&m, [1, 28, 28], 10).unwrap();
        assert_eq!((c.n_epochs, c.lambda.patience, c.log_iter), (50, 1, 140));
        assert!(plan.experiment_dir.ends_with("fashion_mnist/static/default"));
    }

    #[test]
    fn a_dynamic_bias_is_learned_by_default_only_with_a_budget() {
        let learned = |extra: &[&str]| {
            let mut args = vec!["selmask", "train", "--dataset", "mnist", "--mask-type", "dynamic"];
            args.extend_from_slice(extra);
            let (a, m) = train(&args);
            match a.to_config(&m, [1, 28, 28], 10).unwrap().0.mask {
                MaskConfig::Dynamic(d) => d.learn_static,
                other => panic!("{other:?}"),
            }
        };
        assert!(!learned(&[]), "the paper's default");
        assert!(learned(&["--target-q", "0.1"]));
        assert!(!learned(&["--target-q", "0.1", "--dynamic-learn-static", "0"]));
        assert!(learned(&["--dynamic-learn-static"]));
    }

    #[test]
    fn reference_booleans_and_derived_names() {
        let (a, m) = train(&[
            "selmask", "train", "--dataset", "f-mnist", "--mask-type", "static", "--use-warmup-net", "1",
            "--input-drop-upscaling", "False", "--lambda-init", "0.0005", "--use-any-mask",
        ]);
        assert!(a.use_warmup_net && !a.input_drop_upscaling && a.use_any_mask);
        assert_eq!(derived_name(&m), "input_drop_upscaling-False_lambda_init-0.0005_use_any_mask-true_use_warmup_net-1");
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn bad_values_name_their_flag() {
        // Typed flags: refused by the parser, naming flag and value.
        let err = refused(&["selmask", "train", "--dataset", "mnist", "--mask-type", "static", "--any-granularity", "hexagon"]);
        assert!(err.contains("--any-granularity") && err.contains("unknown granularity 'hexagon'") && err.contains("subCXLIVdrant"), "{err}");
        let err = refused(&["selmask", "train", "--dataset", "mnist", "--mask-type", "dynamo"]);
        assert!(err.contains("--mask-type") && err.contains("dynamo") && err.contains("static, dynamic, random, given"), "{err}");
        let err = refused(&["selmask", "train", "--dataset", "mnist-ish", "--mask-type", "static"]);
        assert!(err.contains("--dataset") && err.contains("unknown dataset 'mnist-ish'"), "{err}");
        let err = refused(&["selmask", "train", "--dataset", "mnist", "--mask-type", "static", "--select-on", "train"]);
        assert!(err.contains("--select-on") && err.contains("must be val or test"), "{err}");
        let (a, m) = train(&["selmask", "train", "--dataset", "mnist", "--mask-type", "static", "--batch-size", "0"]);
        assert!(a.to_config(&m, [1, 28, 28], 10).unwrap_err().to_string().contains("batch-size"));
        let (a, m) = train(&["selmask", "train", "--dataset", "mnist", "--mask-type", "static", "--name", "../x"]);
        assert!(a.to_config(&m, [1, 28, 28], 10).unwrap_err().to_string().contains("name"));
    }

    #[test]
    fn augmentation_and_sampling_follow_the_paper_per_dataset_and_can_be_turned_off() {
        let (a, m) = train(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--network", "mlp"]);
        let (c, _) = a.to_config(&m, [3, 32, 32], 10).unwrap();
        assert_eq!(c.augment, AugmentConfig::for_dataset(DatasetName::Cifar10));
        assert!(c.augment.hflip && c.augment.crop_pad == 4);
        assert_eq!((c.sampling, c.n_epochs), (Sampling::Shuffle, 100));
        let (a, m) = train(&["selmask", "train", "--dataset", "ships", "--mask-type", "static", "--network", "mlp"]);
        let (c, _) = a.to_config(&m, [3, 384, 384], 2).unwrap();
        assert_eq!((c.sampling, c.n_epochs, c.augment.crop_pad), (Sampling::ClassBalanced, 200, 10));
        let (a, m) = train(&[
            "selmask", "train", "--dataset", "ships", "--mask-type", "static", "--network", "mlp", "--augment", "none",
            "--sampling", "shuffle",
        ]);
        let (c, _) = a.to_config(&m, [3, 384, 384], 2).unwrap();
        assert_eq!((c.sampling, c.augment), (Sampling::Shuffle, AugmentConfig::NONE));
        let (a, m) = train(&["selmask", "train", "--dataset", "mnist", "--mask-type", "static"]);
        let (c, _) = a.to_config(&m, [1, 28, 28], 10).unwrap();
        assert!(c.augment.is_identity());
    }

    #[test]
    fn bad_augmentation_and_sampling_values_are_named() {
        for (flag, value) in [("--augment", "mixup"), ("--sampling", "weighted")] {
            let err = refused(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--network", "mlp", flag, value]);
            assert!(err.contains(flag) && err.contains(value) && err.contains("paper"), "{err}");
        }
        // A crop whose reflect padding exceeds the input (a tiny input).
        let (a, m) = train(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--network", "mlp"]);
        let err = a.to_config(&m, [3, 4, 4], 10).unwrap_err().to_string();
        assert!(err.contains("crop_pad") && err.contains("[3, 4, 4]"), "{err}");
    }

    #[test]
    fn bad_values_of_the_dynamic_baseline_and_budget_flags_are_named() {
        let err = refused(&["selmask", "train", "--dataset", "mnist", "--mask-type", "dynamic", "--dynamic-mask", "resnet"]);
        assert!(err.contains("--dynamic-mask") && err.contains("unknown mask model; valid: linear"), "{err}");
        let cases: [(&[&str], &str); 6] = [
            (&["--mask-type", "dynamic", "--dynamic-h", "-3", "--dynamic-w", "4"], "dynamic-h = -3"),
            (&["--mask-type", "dynamic", "--dynamic-h", "0", "--dynamic-w", "0"], "dynamic-h = 0"),
            (&["--mask-type", "static", "--target-q", "1.5"], "target-q = 1.5"),
            (&["--mask-type", "random", "--random-num-del", "0"], "random-num-del"),
            (&["--mask-type", "random", "--random-change-iter", "0"], "random-change-iter"),
            (&["--mask-type", "given", "--given-mask-path", "no-such-map.npy"], "no-such-map.npy"),
        ];
        for (flags, needle) in cases {
            let mut argv = vec!["selmask", "train", "--dataset", "mnist"];
            argv.extend_from_slice(flags);
            let (a, m) = train(&argv);
            let err = a.to_config(&m, [1, 28, 28], 10).unwrap_err().to_string();
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
    }

    #[test]
    fn the_default_network_is_the_papers_for_the_dataset() {
        let cases: [(&str, [usize; 3], usize, &str); 5] = [
            ("fashion_mnist", [1, 28, 28], 10, "lenet5"),
            ("cifar10", [3, 32, 32], 10, "resnet20"),
            ("galaxy10", [3, 69, 69], 10, "resnet20-s2"),
            ("remote", [36, 35, 35], 13, "allconv"),
            ("ships", [3, 384, 384], 2, "squeezenet1_1"),
        ];
        for (dataset, shape, classes, network) in cases {
            let (a, m) = train(&["selmask", "train", "--dataset", dataset, "--mask-type", "static"]);
            assert_eq!(a.to_config(&m, shape, classes).unwrap().0.network.name(), network, "{dataset}");
        }
        let (a, m) = train(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--network", "mlp"]);
        assert_eq!(a.to_config(&m, [3, 32, 32], 10).unwrap().0.network.name(), "mlp");
        let err = refused(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--network", "vgg"]);
        assert!(err.contains("--network") && err.contains("vgg") && err.contains("squeezenet1_1"), "{err}");
    }

    #[test]
    fn pretrained_weights_need_squeezenet_and_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("squeezenet1_1.safetensors");
        std::fs::write(&file, b"read when training starts").unwrap();
        let file = file.to_str().unwrap();
        let (a, m) = train(&["selmask", "train", "--dataset", "ships", "--mask-type", "static", "--pretrained", file]);
        let (c, _) = a.to_config(&m, [3, 384, 384], 2).unwrap();
        assert!(matches!(&c.network, NetworkConfig::SqueezeNet11 { pretrained: Some(p), .. } if p.to_str() == Some(file)));

        let (a, m) = train(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--pretrained", file]);
        let err = a.to_config(&m, [3, 32, 32], 10).unwrap_err().to_string();
        assert!(err.contains("pretrained") && err.contains("only squeezenet1_1") && err.contains("resnet20"), "{err}");

        let missing = dir.path().join("nowhere.safetensors");
        let missing = missing.to_str().unwrap();
        let (a, m) = train(&["selmask", "train", "--dataset", "ships", "--mask-type", "static", "--pretrained", missing]);
        let err = a.to_config(&m, [3, 384, 384], 2).unwrap_err().to_string();
        assert!(err.contains(missing) && err.contains("no such file"), "{err}");
        // The warm-up takes the same flag, so warm-up and run agree.
        let pretrain = |args: &[&str]| match Cli::from_arg_matches(&Cli::command().try_get_matches_from(args).unwrap()).unwrap().command {
            Command::Pretrain(p) => p,
            _ => unreachable!(),
        };
        let p = pretrain(&["selmask", "pretrain", "--dataset", "ships", "--pretrained", file]);
        let (pc, _) = p.to_config([3, 384, 384], 2).unwrap();
        assert_eq!(pc.network, c.network);
        let p = pretrain(&["selmask", "pretrain", "--dataset", "ships", "--pretrained", missing]);
        let err = p.to_config([3, 384, 384], 2).unwrap_err().to_string();
        assert!(err.contains(missing) && err.contains("no such file"), "{err}");
    }

    #[test]
    fn xor_flags_build_the_papers_pipeline_and_xor_runs() {
        let base = ["selmask", "train", "--dataset", "cifar10", "--network", "mlp"];
        fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
            base.iter().chain(extra).copied().collect()
        }
        let args = |extra: &[&'static str]| with(&base, extra);
        // static_pipeline_cifar10: JPEG levels, then the any mask.
        let (a, m) = train(&args(&["--mask-type", "static", "--quality-levels", "90", "70", "50", "30", "10", "--any-init-mean", "0.25"]));
        let (c, plan) = a.to_config(&m, [3, 32, 32], 10).unwrap();
        let x = c.xor.as_ref().unwrap();
        assert_eq!(x.versions.quality_levels, [90, 70, 50, 30, 10]);
        assert!(x.versions.thumbs.is_empty() && x.dynamic.is_none());
        assert_eq!((x.fmap_granularity, x.thumb_granularity), (Granularity::Version, Granularity::Version));
        assert!(matches!(c.selection_mask(), Some(MaskConfig::Xor(p)) if p.any.is_some()));
        assert_eq!(c.prepared_shape([3, 32, 32]), [18, 32, 32]);
        assert!(plan.experiment_dir.to_string_lossy().contains("quality_levels-90,70,50,30,10"), "{}", plan.experiment_dir.display());
        // static_xor_cifar10: the xor mask alone.
        let (a, m) = train(&args(&["--mask-type", "static", "--use-any-mask", "0", "--quality-levels", "50"]));
        let (c, _) = a.to_config(&m, [3, 32, 32], 10).unwrap();
        assert!(matches!(c.selection_mask(), Some(MaskConfig::Xor(p)) if p.any.is_none()));
        // Thumbnails (-1: the full side), per-pixel choice, dynamic masks.
        let (a, m) = train(&args(&[
            "--mask-type", "dynamic", "--thumb-w", "16", "-1", "--thumb-h", "16", "8", "--thumb-granularity", "pixel",
        ]));
        let (c, _) = a.to_config(&m, [3, 32, 32], 10).unwrap();
        let x = c.xor.as_ref().unwrap();
        assert_eq!(x.versions.thumbs, [[16, 16], [8, 32]]);
        assert_eq!(x.thumb_granularity, Granularity::Pixel);
        assert!(x.dynamic.is_some());
        // No versions: no xor selection.
        let (a, m) = train(&args(&["--mask-type", "static"]));
        assert!(a.to_config(&m, [3, 32, 32], 10).unwrap().0.xor.is_none());
    }

    #[test]
    fn bad_xor_values_are_named() {
        for (flag, value) in [("--fmap-granularity", "hexagon"), ("--thumb-granularity", "nope")] {
            let err = refused(&["selmask", "train", "--dataset", "cifar10", "--mask-type", "static", "--quality-levels", "50", flag, value]);
            assert!(err.contains(flag) && err.contains(&format!("unknown granularity '{value}'")), "{err}");
        }
        let cases: [(&[&str], &str); 9] = [
            (&["--quality-levels", "0"], "quality-levels = 0: jpeg quality must be within 1..=100"),
            (&["--quality-levels", "90", "101"], "quality-levels = 101"),
            (&["--quality-levels", "-5"], "quality-levels = -5"),
            (&["--thumb-w", "16", "8", "--thumb-h", "16"], "thumb-w/thumb-h = 2 widths, 1 heights"),
            (&["--thumb-w", "0", "--thumb-h", "16"], "thumb-w = 0"),
            (&["--thumb-w", "16", "--thumb-h", "-3"], "thumb-h = -3"),
            (&["--quality-levels", "50", "--fmap-granularity", "grid:64"], "finer than the input"),
            (&["--quality-levels", "50", "--mask-type", "random"], "xor (version) selection needs a learned mask"),
            (&["--quality-levels", "50", "--dataset", "remote"], "quality-levels = remote"),
        ];
        for (flags, needle) in cases {
            let mut argv = vec!["selmask", "train", "--network", "mlp"];
            if !flags.contains(&"--mask-type") {
                argv.extend(["--mask-type", "static"]);
            }
            if !flags.contains(&"--dataset") {
                argv.extend(["--dataset", "cifar10"]);
            }
            argv.extend_from_slice(flags);
            let (a, m) = train(&argv);
            let shape = if a.data.dataset == DatasetName::Remote { [36, 35, 35] } else { [3, 32, 32] };
            let err = a.to_config(&m, shape, 10).unwrap_err().to_string();
            assert!(err.contains(needle), "{flags:?}: {err}");
        }
    }
}
