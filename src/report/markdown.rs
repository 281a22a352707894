//! The Markdown report of one dataset: a summary against the paper, the
//! figures, one accuracy-versus-Q table per experiment, skipped runs, the
//! commands that produced the runs and notes on schedule and hardware.

use std::fmt::Write as _;
use std::path::Path;

use super::aggregate::{self, BudgetResult, Experiment, ExperimentSummary, SkippedRun};
use super::paper::{self, PaperPoint};
use super::table::CurveRow;

/// A figure as linked from the report (paths relative to the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureLink {
    /// What it shows.
    pub caption: String,
    /// The PNG, shown inline.
    pub png: String,
    /// The SVG, linked.
    pub svg: String,
}

/// One row of the summary table: a method at a bandwidth budget, ours
/// and/or the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    /// Our experiment's label, or the paper's name for methods we did not run.
    pub label: String,
    /// The budget: the largest Q allowed.
    pub budget: f64,
    /// Our runs (absent for methods we did not run).
    pub total_runs: Option<usize>,
    /// Our result within the budget (absent when no run got there).
    pub ours: Option<BudgetResult>,
    /// The paper's number for this method at this Q.
    pub paper: Option<PaperPoint>,
}

/// Summary rows for `dataset`: every experiment at every budget in
/// `budgets` and every Q the paper reports for its method, then the
/// paper's numbers for methods without runs (full data, CAE, ...).
pub fn budget_rows(dataset: &str, experiments: &[&Experiment], labels: &[String], budgets: &[f64]) -> Vec<BudgetRow> {
    let mut rows = Vec::new();
    let refs = paper::for_dataset(dataset);
    for (e, label) in experiments.iter().zip(labels) {
        let mut qs: Vec<f64> = budgets.to_vec();
        qs.extend(refs.iter().filter(|p| p.method == e.method()).map(|p| p.q));
        qs.sort_by(f64::total_cmp);
        qs.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        for q in qs {
            rows.push(BudgetRow {
                label: label.clone(),
                budget: q,
                total_runs: Some(e.runs.len()),
                ours: aggregate::at_budget(&e.runs, q),
                paper: paper::lookup(dataset, e.method(), q),
            });
        }
    }
    for p in refs.iter().filter(|p| !experiments.iter().any(|e| e.method() == p.method)) {
        rows.push(BudgetRow { label: format!("{} (not run)", p.label), budget: p.q, total_runs: None, ours: None, paper: Some(*p) });
    }
    rows
}

/// Everything one dataset's report shows.
#[derive(Debug, Clone, Copy)]
pub struct DatasetPage<'a> {
    /// Dataset name.
    pub dataset: &'a str,
    /// Where the runs were read from.
    pub runs_dir: &'a Path,
    /// Its experiments, aggregated.
    pub experiments: &'a [ExperimentSummary],
    /// The summary table (see [`budget_rows`]).
    pub budget_rows: &'a [BudgetRow],
    /// Its runs that were left out.
    pub skipped: &'a [SkippedRun],
    /// Figures to show.
    pub figures: &'a [FigureLink],
    /// The commands that produced the runs, verbatim.
    pub commands: &'a [String],
    /// Notes on the schedule and the hardware, one per bullet.
    pub notes: &'a [String],
}

/// `m ± s` to 4 decimals (just `m` for a single run, as the terminal table).
fn pm((m, s): (f64, f64), runs: usize) -> String {
    if runs > 1 { format!("{m:.4} ± {s:.4}") } else { format!("{m:.4}") }
}

/// A number without trailing zeros (0.05, 0.1, 1).
fn short(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Escapes what would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn curve_table(out: &mut String, rows: &[CurveRow]) {
    out.push_str("| Q interval | runs | mean Q | bytes fraction | val acc | test acc | mean epoch |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| [{:.2}, {:.2}) | {} | {:.4} | {:.4} | {} | {} | {:.1} |",
            r.interval[0],
            r.interval[1],
            r.runs,
            r.q,
            r.bytes_fraction,
            r.val_accuracy.map_or("–".into(), |v| pm(v, r.runs)),
            pm(r.test_accuracy, r.runs),
            r.epoch
        );
    }
}

/// One line describing an experiment's settings.
fn settings(e: &ExperimentSummary) -> String {
    let c = &e.record.config;
    let mut parts = Vec::new();
    if c.use_any_mask {
        parts.push(format!("granularity `{}`", c.mask.granularity()));
    }
    if let Some(x) = &c.xor {
        let v = &x.versions;
        let mut what = Vec::new();
        if !v.quality_levels.is_empty() {
            what.push(format!("JPEG {:?} per `{}`", v.quality_levels, x.fmap_granularity));
        }
        if !v.thumbs.is_empty() {
            what.push(format!("thumbnails {:?} per `{}`", v.thumbs, x.thumb_granularity));
        }
        parts.push(format!("xor selection of {}", what.join(" and ")));
    }
    parts.push(format!("network `{}`", c.network.name()));
    parts.push(format!("{} epochs", c.n_epochs));
    parts.push(format!("batch {}", c.batch_size));
    if (c.use_any_mask || c.xor.is_some()) && !c.freeze_mask {
        let l = c.lambda;
        parts.push(format!(
            "λ from {}, ×{} once Q has not improved by > {} for more than {} epoch{}",
            short(l.init),
            short(l.factor),
            short(l.threshold),
            l.patience,
            if l.patience == 1 { "" } else { "s" }
        ));
    }
    parts.push(format!("Q intervals of width {}", short(c.checkpoint_qloss_interval)));
    parts.push(format!("checkpoints selected on {}", if e.select_on == crate::training::SelectOn::Test { "test (as the paper did)" } else { "validation" }));
    if c.warmup.is_some() {
        parts.push("warm-started network".into());
    }
    if c.freeze_mask {
        parts.push("mask frozen (network fine-tuned)".into());
    }
    parts.join(" · ")
}

/// Renders the report of one dataset.
pub fn render(page: &DatasetPage) -> String {
    let mut out = String::new();
    let n_runs: usize = page.experiments.iter().map(|e| e.n_runs).sum();
    let _ = writeln!(out, "# {}: accuracy versus Q\n", page.dataset);
    let _ = writeln!(
        out,
        "{} experiment{} ({} complete run{}) read from `{}`.\n",
        page.experiments.len(),
        if page.experiments.len() == 1 { "" } else { "s" },
        n_runs,
        if n_runs == 1 { "" } else { "s" },
        page.runs_dir.display()
    );

    out.push_str("## Summary against the paper\n\n");
    out.push_str(
        "**Rule for \"accuracy at Q ≈ q\"** (a bandwidth budget): for each run, every evaluated epoch with \
         Q ≤ q (from `metrics.jsonl`) is a candidate; the one with the best selection accuracy (validation, or \
         test for runs selected on test; the earliest among equals, as checkpoints are kept) is taken and its \
         **test** accuracy reported, as mean ± sample standard deviation over the runs that got within the \
         budget (`runs` = reached / total). `Q reached` is the mean Q of the chosen epochs. A method is thus \
         never credited with more data than q, so the comparison is conservative where the paper's points sit \
         slightly above q. With Q intervals of width 0.05 this is the best checkpoint of [0, q) (plus epochs at \
         exactly q): for q = 0.05 the interval [0.00, 0.05), not [0.05, 0.10). The paper's code selected \
         checkpoints on the test set, an optimistic choice; ours select on validation unless their settings \
         say otherwise. The paper's values are read off its figures (≈, see `METHOD.md`); rows marked \
         \"(not run)\" are the paper's methods without runs here.\n\n",
    );
    out.push_str("| method | Q ≤ | runs | Q reached | test acc (ours) | paper | ours − paper |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for r in page.budget_rows {
        let runs = match (&r.ours, r.total_runs) {
            (Some(o), _) => format!("{}/{}", o.runs, o.total_runs),
            (None, Some(t)) => format!("0/{t}"),
            (None, None) => "–".into(),
        };
        let (q, acc) = match (&r.ours, r.total_runs) {
            (Some(o), _) => (format!("{:.4}", o.q), pm(o.test_accuracy, o.runs)),
            (None, Some(_)) => ("–".into(), "not reached".into()),
            (None, None) => ("–".into(), "–".into()),
        };
        let paper = r.paper.map_or("–".into(), |p| format!("≈ {}", short(p.accuracy)));
        let diff = match (&r.ours, r.paper) {
            (Some(o), Some(p)) => format!("{:+.4}", o.test_accuracy.0 - p.accuracy),
            _ => "–".into(),
        };
        let _ = writeln!(out, "| {} | {} | {runs} | {q} | {acc} | {paper} | {diff} |", cell(&r.label), short(r.budget));
    }
    out.push('\n');

    if !page.figures.is_empty() {
        out.push_str("## Figures\n\n");
        for f in page.figures {
            let _ = writeln!(out, "**{}** ([SVG]({}))\n\n![{}]({})\n", f.caption, f.svg, f.caption, f.png);
        }
    }

    out.push_str("## Results per experiment\n\n");
    out.push_str(
        "Per Q interval [lo, hi), each run contributes its best checkpoint in that interval (by the selection \
         accuracy); the table shows the mean over the runs that reached the interval (`runs`) and, for several \
         runs, the sample standard deviation. Rows with fewer runs average fewer, possibly better, runs.\n\n",
    );
    for e in page.experiments {
        let runs = format!("{} run{}", e.n_runs, if e.n_runs == 1 { "" } else { "s" });
        if e.label == e.id.label() {
            let _ = writeln!(out, "### {} ({runs})\n", cell(&e.label));
        } else {
            let _ = writeln!(out, "### {} (`{}`, {runs})\n", cell(&e.label), e.id.label());
        }
        let _ = writeln!(out, "{}\n", settings(e));
        for w in &e.warnings {
            let _ = writeln!(out, "> **Note:** {w}\n");
        }
        curve_table(&mut out, &e.curve);
        out.push('\n');
    }

    out.push_str("## Skipped runs\n\n");
    if page.skipped.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| run | reason |\n|---|---|\n");
        for s in page.skipped {
            let dir = s.dir.strip_prefix(page.runs_dir).unwrap_or(&s.dir);
            let _ = writeln!(out, "| `{}` | {} |", dir.display(), cell(&s.reason));
        }
        out.push('\n');
    }

    out.push_str("## Commands\n\n");
    if page.commands.is_empty() {
        out.push_str("Not recorded.\n\n");
    } else {
        out.push_str("```sh\n");
        for c in page.commands {
            let _ = writeln!(out, "{c}");
        }
        out.push_str("```\n\n");
    }

    out.push_str("## Schedule and hardware\n\n");
    if page.notes.is_empty() {
        out.push_str("Not recorded.\n\n");
    } else {
        for n in page.notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }

    out.push_str("## The paper's numbers\n\n");
    let refs = paper::for_dataset(page.dataset);
    if refs.is_empty() {
        out.push_str("The paper reports no headline number for this dataset.\n");
    } else {
        out.push_str("Read off the paper's figures (the reference `METHOD.md`, Oehmcke & Gieseke, SDM 2022).\n\n");
        out.push_str("| dataset | method | Q | accuracy |\n|---|---|---:|---:|\n");
        for p in refs {
            let _ = writeln!(out, "| {} | {} | {} | ≈ {} |", p.dataset, p.label, short(p.q), short(p.accuracy));
        }
    }
    out
}
