//! Progress display: a bar per epoch and a line per finished epoch.
//!
//! Bars draw only on a terminal (indicatif hides them otherwise); epoch
//! lines always print unless quiet, so logs of batch jobs stay readable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Nothing but errors.
    Quiet,
    /// Bars and a line per epoch.
    Normal,
}

/// The progress display of a run.
#[derive(Debug, Clone)]
pub struct Progress {
    verbosity: Verbosity,
    label: String,
}

impl Progress {
    /// A display whose lines start with `label` (e.g. `run_0`).
    pub fn new(verbosity: Verbosity, label: impl Into<String>) -> Self {
        Progress { verbosity, label: label.into() }
    }

    /// A bar over `len` batches of epoch `epoch` of `n_epochs`.
    pub fn epoch_bar(&self, epoch: usize, n_epochs: usize, len: usize) -> ProgressBar {
        if self.verbosity == Verbosity::Quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} {bar:30.cyan/blue} {pos}/{len} batches {elapsed}<{eta} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} epoch {epoch}/{n_epochs}", self.label));
        bar
    }

    /// Prints a line (above any bar).
    pub fn line(&self, text: impl AsRef<str>) {
        if self.verbosity != Verbosity::Quiet {
            eprintln!("{} {}", self.label, text.as_ref());
        }
    }
}
