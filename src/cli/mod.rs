//! The `selmask` program: a room per subcommand, as cargo lays out its
//! commands. Each file holds one subcommand's flags (typed by clap, so a
//! bad value fails before any file is read), their checks and its action
//! (`run`); this module holds the command line itself, the flags several
//! subcommands share and their helpers.

pub mod bench;
pub mod export;
pub mod importance;
pub mod infer;
pub mod ingest;
pub mod pretrain;
pub mod report;
pub mod reproduce;
pub mod serve;
pub mod train;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use burn::prelude::*;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};

use crate::data;
use crate::data::{DatasetName, ImageSet, TrainingData};
use crate::data::augment::AugmentConfig;
use crate::data::sampling::Sampling;
use crate::error::{Error, Result};
use crate::models::{NETWORK_NAMES, NetworkConfig};

use bench::BenchArgs;
use export::ExportArgs;
use importance::ImportanceArgs;
use infer::InferArgs;
use ingest::IngestArgs;
use pretrain::PretrainArgs;
use report::ReportArgs;
use reproduce::ReproduceArgs;
use serve::ServeArgs;
use train::TrainArgs;

/// Train neural networks together with binary input-selection masks, so
/// that only the selected parts of each input have to cross the wire
/// (Oehmcke & Gieseke, SDM 2022).
#[derive(Debug, Parser)]
#[command(name = "selmask", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network jointly with a selection mask (the paper's create_mask.py).
    Train(Box<TrainArgs>),
    /// Train the network alone (no mask) and save it as the warm-up for --use-warmup-net.
    Pretrain(Box<PretrainArgs>),
    /// Write one checkpoint of a run as a versioned artifact (manifest, mask.npy, safetensors weights).
    Export(ExportArgs),
    /// Write a dataset split into a Zarr v3 store chunked along a granularity's mask cells.
    Ingest(Box<IngestArgs>),
    /// Hold a dataset and send only the selected parts of its items to clients (HTTP).
    Serve(Box<ServeArgs>),
    /// Fetch the selected parts of a split from a server and classify them.
    Infer(Box<InferArgs>),
    /// Run one of the paper's experiments (the authors' scripts, or Tables 2a/2b with --params table); --list shows them.
    Reproduce(ReproduceArgs),
    /// Random-forest importance map of a dataset's inputs (NPY), for --mask-type given.
    Importance(ImportanceArgs),
    /// Aggregate run directories into tables, figures (PNG/SVG) and Markdown pages.
    Report(ReportArgs),
    /// Measure speed and memory.
    Bench(BenchArgs),
}

/// Parses the reference's booleans: 1/0, true/false, t/f, yes/no, y/n.
pub fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Ok(true),
        "0" | "false" | "f" | "no" | "n" => Ok(false),
        _ => Err(format!("'{s}' is not a boolean (use 1/0, true/false, yes/no)")),
    }
}

/// Compute backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// Burn's pure-Rust CPU backend (with selmask's convolution kernels).
    Flex,
    /// The default GPU through Burn's wgpu backend (Vulkan/Metal/DX12; build with `--features wgpu`).
    #[cfg(feature = "wgpu")]
    Wgpu,
}

/// Options shared by commands that read a dataset.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset: mnist, fashion_mnist (also f-mnist), synthetic, cifar10, svhn, galaxy10, remote, ships.
    #[arg(long)]
    pub dataset: DatasetName,
    /// Directory with the dataset's files [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Fraction of the training set held out for validation (seeded by --seed).
    #[arg(long, default_value_t = 0.1)]
    pub val_split: f64,
    /// Network: lenet5 (28x28 inputs), mlp, resnet20, resnet20-s2 (ResNet20 with stride 2 in its first stage), allconv, squeezenet1_1 [default: the paper's network for the dataset: lenet5 for mnist, fashion_mnist and 28x28 synthetic data, resnet20 for cifar10 and svhn, resnet20-s2 for galaxy10, allconv for remote, squeezenet1_1 for ships; mlp for other synthetic shapes].
    #[arg(long, value_parser = NETWORK_NAMES)]
    pub network: Option<String>,
    /// squeezenet1_1 only: start from torchvision's ImageNet weights in this local safetensors file (nothing is downloaded); the classifier is re-initialised for the dataset's classes and the last Fire module reset, as the paper's code. Make the file with: python -c 'from safetensors.torch import save_file; import torchvision; save_file(torchvision.models.squeezenet1_1(weights="IMAGENET1K_V1").state_dict(), "squeezenet1_1.safetensors")'
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Ships only: read at most this many images per class and split (the first in sorted file order), to bound memory; the full ship data hold about 190,000 images, about 85 GB as 3x384x384 bytes [default: all].
    #[arg(long)]
    pub max_per_class: Option<usize>,
    /// Ships only: keep only the list of image files and decode each batch from its files (as PyTorch's ImageFolder), so memory is one batch instead of the whole data; every epoch decodes again. Each file's size is checked from its header at the start.
    #[arg(long)]
    pub stream: bool,
    /// Compute backend: flex (CPU) is always built in; wgpu (a GPU) exists in builds with `--features wgpu`.
    #[arg(long, value_enum, default_value_t = BackendChoice::Flex)]
    pub backend: BackendChoice,
    /// Training-time augmentation, drawn per item from the run's seed: paper (the supplement's Table 1:
    /// none for mnist/fashion_mnist/synthetic; h-flip + reflect crop pad 4 for cifar10 and svhn;
    /// v+h flips + shift crop of up to 8 px for galaxy10; v+h flips for remote; v+h flips + reflect
    /// crop pad 10 for ships) or none.
    #[arg(long, default_value = "paper", value_parser = ["paper", "none"])]
    pub augment: String,
    /// Which training items an epoch visits: paper (class-balanced for ships, shuffle otherwise),
    /// shuffle (every item once), or class-balanced (the smallest class's size per epoch, drawn
    /// without replacement with weights 1 - n_class/N, as the paper's ships sampler).
    #[arg(long, default_value = "paper", value_parser = ["paper", "shuffle", "class-balanced", "class_balanced", "balanced"])]
    pub sampling: String,
}

impl DataArgs {
    fn check_val_split(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.val_split) {
            return Err(Error::config("val-split", self.val_split, "must be in [0, 1)"));
        }
        Ok(())
    }

    /// The augmentation of `--augment` for `dataset`.
    pub fn augment_config(&self, dataset: DatasetName) -> Result<AugmentConfig> {
        match self.augment.as_str() {
            "paper" => Ok(AugmentConfig::for_dataset(dataset)),
            "none" => Ok(AugmentConfig::NONE),
            other => Err(Error::config("augment", other, "must be paper or none")),
        }
    }

    /// The sampling of `--sampling` for `dataset`.
    pub fn sampling(&self, dataset: DatasetName) -> Result<Sampling> {
        match self.sampling.as_str() {
            "paper" => Ok(Sampling::for_dataset(dataset)),
            other => other.parse(),
        }
    }

    /// The network for inputs of `shape` with `n_classes`: `--network`, or
    /// the paper's network for the dataset; from `--pretrained` weights
    /// when given.
    pub fn network(&self, shape: [usize; 3], n_classes: usize) -> Result<NetworkConfig> {
        let network = match self.network.as_deref() {
            Some(name) => NetworkConfig::by_name(name, shape, n_classes),
            None => NetworkConfig::for_dataset(self.dataset, shape, n_classes),
        }?;
        network.with_pretrained(self.pretrained.clone())
    }
}

/// The training device of a backend choice (with autodiff).
pub fn device(backend: BackendChoice) -> Device {
    match backend {
        BackendChoice::Flex => Device::flex().autodiff(),
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff(),
    }
}

fn load_dataset(args: &crate::cli::DataArgs) -> anyhow::Result<TrainingData> {
    let name = args.dataset;
    data::load_for_training(name, args.data_dir.as_deref(), args.max_per_class, args.stream)
        .with_context(|| format!("loading dataset {name}"))
}

/// Longest duration a flag accepts: a day. Longer is no timeout in
/// practice, and `Duration::from_secs_f64` panics past ~5.8e11 years.
pub const MAX_SECONDS: f64 = 86_400.0;

/// A duration flag: finite, positive, at most [`MAX_SECONDS`].
pub fn seconds(field: &'static str, s: f64) -> Result<Duration> {
    if s.is_finite() && s > 0.0 && s <= MAX_SECONDS {
        Ok(Duration::from_secs_f64(s))
    } else {
        // `{:?}` writes 1e300 as such, not as 301 digits.
        Err(Error::config(field, format!("{s:?}"), format!("must be a positive number of seconds, at most {MAX_SECONDS} (a day)")))
    }
}

/// A count or size flag within `range`.
pub fn within(field: &'static str, value: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::config(field, value, format!("must be within {}..={}", range.start(), range.end())))
    }
}

/// The named splits (`test`, `train`) of dataset `name`.
fn load_splits(name: DatasetName, data_dir: Option<&std::path::Path>, splits: &[String]) -> anyhow::Result<Vec<(String, ImageSet)>> {
    let dataset = data::load(name, data_dir).with_context(|| format!("loading dataset {name}"))?;
    splits
        .iter()
        .map(|split| match split.as_str() {
            "test" => Ok(("test".to_string(), dataset.test.clone())),
            "train" => Ok(("train".to_string(), dataset.train.clone())),
            other => bail!("unknown split '{other}': test and/or train"),
        })
        .collect()
}

/// Runs the subcommand of `cli` (`matches`: the command line it was read
/// from, for the flags `train` names its experiment after).
pub fn run(cli: &Cli, matches: &ArgMatches) -> anyhow::Result<()> {
    match &cli.command {
        Command::Train(args) => train::run(args, matches.subcommand_matches("train").expect("train matches")),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Reproduce(args) => reproduce::run(args),
        Command::Importance(args) => importance::run(args),
        Command::Report(args) => report::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_documents_every_flag() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{} --{} has no help", sub.get_name(), arg.get_id());
            }
        }
    }
}
