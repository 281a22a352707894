//! Reports: tables of accuracy versus Q, figures (PNG and SVG) and
//! Markdown pages built from run directories.

pub mod aggregate;
pub mod markdown;
pub mod paper;
pub mod plots;
pub mod table;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use aggregate::{Experiment, LoadOptions, SkippedRun};
use markdown::{DatasetPage, FigureLink};

/// How [`write_report`] works and what it records.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// The commands that produced the runs, shown verbatim.
    pub commands: Vec<String>,
    /// Notes on the schedule and the hardware, one bullet each.
    pub notes: Vec<String>,
    /// Q budgets of the summary table, besides the paper's own Qs.
    pub budgets: Vec<f64>,
    /// Upper Q of the comparison figure's zoomed panel.
    pub zoom_q: f64,
    /// Also use runs that stopped before their planned epochs.
    pub include_unfinished: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { commands: Vec::new(), notes: Vec::new(), budgets: vec![0.05, 0.10], zoom_q: 0.3, include_unfinished: false }
    }
}

/// What was written for one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetReport {
    /// Dataset name.
    pub dataset: String,
    /// `<out_dir>/<page_name(dataset)>`.
    pub markdown: PathBuf,
    /// Every figure file (PNG and SVG).
    pub figures: Vec<PathBuf>,
    /// Experiments, as `mask_type/name`.
    pub experiments: Vec<String>,
    /// Complete runs used.
    pub runs: usize,
}

/// What [`write_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    /// One entry per dataset with at least one complete run.
    pub datasets: Vec<DatasetReport>,
    /// Every run left out, and why.
    pub skipped: Vec<SkippedRun>,
}

/// The Markdown page of `dataset`: `fashion-mnist.md` for `fashion_mnist`
/// (hyphens, as web pages are usually named).
pub fn page_name(dataset: &str) -> String {
    format!("{}.md", aggregate::slug(dataset).replace('_', "-"))
}

/// Reads every run under `runs_dir` and writes `<out_dir>/<dataset>.md` (see [`page_name`])
/// for each dataset, with its figures under `<out_dir>/figures/`
/// (`<dataset>_comparison` and `<dataset>_<mask-type>_<name>_epochs`, each
/// `.png` and `.svg`). A dataset whose runs were all skipped gets no page;
/// its runs are in [`ReportSummary::skipped`]. Errors as
/// [`aggregate::load_runs`], or when a file cannot be written.
pub fn write_report(runs_dir: &Path, out_dir: &Path, options: &ReportOptions) -> Result<ReportSummary> {
    let loaded = aggregate::load_runs(runs_dir, LoadOptions { include_unfinished: options.include_unfinished })?;
    let figures_dir = out_dir.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|e| Error::io(&figures_dir, e))?;
    let mut datasets = Vec::new();
    for dataset in loaded.datasets() {
        let experiments: Vec<&Experiment> = loaded.experiments.iter().filter(|e| e.id.dataset == dataset).collect();
        let labels = aggregate::labels(&experiments);
        let summaries: Vec<_> = experiments.iter().zip(&labels).map(|(e, l)| aggregate::summarize(e, l.clone())).collect();
        let skipped: Vec<SkippedRun> = loaded
            .skipped
            .iter()
            .filter(|s| s.dir.strip_prefix(runs_dir).ok().and_then(|p| p.iter().next()) == Some(dataset.as_ref()))
            .cloned()
            .collect();

        let mut files = Vec::new();
        let mut links = Vec::new();
        let mut link = |caption: String, stem: &str, written: Vec<PathBuf>| {
            links.push(FigureLink { caption, png: format!("figures/{stem}.png"), svg: format!("figures/{stem}.svg") });
            files.extend(written);
        };
        let stem = format!("{}_comparison", aggregate::slug(&dataset));
        let refs = paper::for_dataset(&dataset);
        let written = plots::comparison_figure(&dataset, &summaries, &refs, options.zoom_q, &figures_dir.join(&stem))?;
        link("Test accuracy versus Q, all methods and the paper's numbers".into(), &stem, written);
        for s in &summaries {
            let stem = format!("{}_epochs", s.id.slug());
            let written = plots::epoch_figure(s, &figures_dir.join(&stem))?;
            link(format!("{}: accuracy, Q and λ per epoch", s.label), &stem, written);
        }

        let rows = markdown::budget_rows(&dataset, &experiments, &labels, &options.budgets);
        let text = markdown::render(&DatasetPage {
            dataset: &dataset,
            runs_dir,
            experiments: &summaries,
            budget_rows: &rows,
            skipped: &skipped,
            figures: &links,
            commands: &options.commands,
            notes: &options.notes,
        });
        let md = out_dir.join(page_name(&dataset));
        std::fs::write(&md, text).map_err(|e| Error::io(&md, e))?;
        datasets.push(DatasetReport {
            dataset: dataset.clone(),
            markdown: md,
            figures: files,
            experiments: experiments.iter().map(|e| e.id.label()).collect(),
            runs: summaries.iter().map(|s| s.n_runs).sum(),
        });
    }
    Ok(ReportSummary { datasets, skipped: loaded.skipped })
}
