//! The main crate's error type: data loading, training, checkpoints and
//! reports. Errors of the Burn-free half (files, artifacts, the wire) are
//! [`selmask_wire::error::Error`], carried as [`Error::Wire`].
//!
//! Messages are lowercase, carry the numbers, shapes and paths that explain
//! what went wrong, and never end with a period, so they read well inside an
//! `anyhow` context chain printed by the binary.

use std::path::PathBuf;

pub use selmask_wire::error::Error as WireError;

/// Everything that can go wrong in `selmask`'s library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No directory holding the dataset files was found.
    #[error("no {dataset} data found (looked in: {looked}); {hint}")]
    DataNotFound {
        dataset: String,
        looked: String,
        hint: String,
    },

    /// An IDX file whose magic number is not the expected one.
    #[error(
        "{path}: not an idx {what} file: magic number is {found:#010x}, expected {expected:#010x}"
    )]
    IdxMagic {
        path: PathBuf,
        what: &'static str,
        expected: u32,
        found: u32,
    },

    /// An IDX file shorter (or longer) than its header says.
    #[error(
        "{path}: truncated idx file: header {dims:?} needs {expected} bytes of data, found {found}"
    )]
    IdxSize {
        path: PathBuf,
        dims: Vec<u32>,
        expected: u64,
        found: u64,
    },

    /// Image and label files that disagree on the number of items.
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        n_images: usize,
        n_labels: usize,
    },

    /// A data file whose content does not match its format: truncated, a
    /// wrong shape or dtype, a missing key or variable, an undecodable image.
    #[error("{path}: invalid {what}: {reason}")]
    Format {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },

    /// A label outside `0..n_classes`.
    #[error("{path}: label {label} at item {index} is outside 0..{n_classes}")]
    LabelRange {
        path: PathBuf,
        index: usize,
        label: u32,
        n_classes: usize,
    },

    /// A configuration value outside its valid range.
    #[error("invalid {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },

    /// Training produced a NaN or infinite loss.
    #[error(
        "non-finite loss ({value}) at epoch {epoch}, batch {batch}: training stopped; \
         checkpoints already written in {run_dir} are intact"
    )]
    NonFiniteLoss {
        value: f32,
        epoch: usize,
        batch: usize,
        run_dir: PathBuf,
    },

    /// The warm-up network expected by `--use-warmup-net` is missing.
    #[error("warm-up network {path} not found; create it with `selmask pretrain --dataset {dataset}`")]
    WarmupMissing { path: PathBuf, dataset: String },

    /// A checkpoint or warm-up file that cannot be read back.
    #[error("{path}: corrupt checkpoint: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    /// One line of a JSON-lines file that does not parse.
    #[error("{path} line {line}: invalid json: {source}")]
    JsonLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },

    /// A runs directory that does not exist.
    #[error("runs directory {path} does not exist or is not a directory")]
    NotADirectory { path: PathBuf },

    /// A runs directory holding no run.
    #[error(
        "no runs found under {path} (expected <dataset>/<mask-type>/<name>/run_<i>/ holding config.json, metrics.jsonl and summary.json)"
    )]
    NoRuns { path: PathBuf },

    /// A runs directory whose runs were all skipped.
    #[error("no complete runs under {path}: all {skipped} runs were skipped ({first})")]
    NoCompleteRuns { path: PathBuf, skipped: usize, first: String },

    /// A figure that could not be drawn or encoded.
    #[error("{path}: cannot draw figure: {message}")]
    Plot { path: PathBuf, message: String },

    /// Inputs to a mask figure whose sizes do not agree.
    #[error("mask figure: {0}")]
    MaskInput(String),

    /// A split that is empty where training needs items.
    #[error("the {split} split is empty: {reason}; nothing was trained")]
    EmptySplit { split: &'static str, reason: String },

    /// `--resume` of a run that was started with other settings.
    #[error("{path}: cannot resume: the run was started with other settings ({settings}); resume with its flags, or pass --overwrite to start it again")]
    ResumeMismatch { path: PathBuf, settings: String },

    /// An error of the Burn-free half: files, artifacts, the wire, the
    /// server or the client.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an [`std::io::Error`] (as [`WireError::Io`]) with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WireError::io(path, source).into()
    }

    /// A JSON (de)serialisation error on the file at `path` (as
    /// [`WireError::Json`]).
    pub fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        WireError::json(path, source).into()
    }

    /// A [`WireError::Invalid`] for `field` of `file`.
    pub fn invalid(file: impl Into<PathBuf>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        WireError::invalid(file, field, reason).into()
    }

    /// A [`WireError::Spec`] for `field`.
    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WireError::spec(field, reason).into()
    }

    /// A [`WireError::Payload`].
    pub fn payload(reason: impl Into<String>) -> Self {
        WireError::payload(reason).into()
    }

    /// An [`Error::Format`] on `path`, a file (or folder) of kind `what`.
    pub fn format(path: impl Into<PathBuf>, what: &'static str, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            what,
            reason: reason.into(),
        }
    }

    /// A drawing error on the figure written to `path`.
    pub fn plot(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Plot { path: path.into(), message: err.to_string() }
    }

    /// An [`Error::InvalidConfig`] for `field`.
    pub fn config(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
