//! `selmask report`: tables, figures and Markdown of accuracy against Q
//! from finished runs, its flags and the action; and the example masks,
//! which live here (on the Burn side) because they load checkpoints and
//! run dynamic mask models (and, for xor selections, make the examples'
//! versions and compose what is sent); the drawing is
//! [`crate::report::plots::mask_figure`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::prelude::*;
use clap::Args;

use crate::data;
use crate::data::DatasetName;
use crate::masks::{Mask, MaskConfig};
use crate::report::aggregate::{load_runs, LoadOptions};
use crate::report::plots::{mask_figure, MaskExample, MaskFigure};
use crate::training::checkpoint::SelectionModel;

/// `selmask report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The runs directory (the --exp-dir of the training runs, holding <dataset>/<mask-type>/<name>/run_<i>).
    pub runs_dir: PathBuf,
    /// Where to write <dataset>.md (fashion-mnist.md for fashion_mnist) and figures/.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// A command that produced the runs, shown verbatim in the report (repeatable).
    #[arg(long = "command")]
    pub commands: Vec<String>,
    /// A note on the schedule or the hardware, one bullet each (repeatable).
    #[arg(long = "note")]
    pub notes: Vec<String>,
    /// Q budgets of the summary table, besides the paper's own Qs.
    #[arg(long = "budget", default_values_t = vec![0.05, 0.10])]
    pub budgets: Vec<f64>,
    /// Upper Q of the comparison figure's zoomed panel.
    #[arg(long, default_value_t = 0.3)]
    pub zoom_q: f64,
    /// Also use runs that stopped before their planned epochs.
    #[arg(long)]
    pub include_unfinished: bool,
    /// Draw each experiment's mask (its best checkpoint with Q at most this) over test inputs; needs the dataset [default: 0.1; 0 = no mask figures].
    #[arg(long = "mask-examples-q", default_value_t = 0.1)]
    pub mask_examples_q_raw: f64,
    /// Directory with the dataset's files, for the mask figures [default: $SELMASK_DATA, then the Debian package's directory].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ReportArgs {
    /// The Q budget of the mask figures, `None` when turned off.
    pub fn mask_examples_q(&self) -> Option<f64> {
        (self.mask_examples_q_raw > 0.0).then_some(self.mask_examples_q_raw)
    }
}

/// `selmask report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
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
        let files = write_mask_figures(&args.runs_dir, &args.out, max_q, args.data_dir.as_deref())?;
        println!("{} example-mask figure files", files.len());
    }
    Ok(())
}

/// Examples drawn per figure.
const EXAMPLES: usize = 8;

/// Writes `<out>/figures/<experiment>_masks.{png,svg}` for every experiment
/// under `runs_dir` whose first run has a checkpoint with Q <= `max_q`, and
/// appends an "Example masks" section to `<out>/<dataset>.md`. Returns the
/// files written. Datasets whose data cannot be loaded are skipped with a
/// message (the tables do not need the data).
pub fn write_mask_figures(runs_dir: &Path, out: &Path, max_q: f64, data_dir: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let loaded = load_runs(runs_dir, LoadOptions::default())?;
    let device = Device::flex();
    let mut written = Vec::new();
    for dataset in loaded.datasets() {
        let name: DatasetName = match dataset.parse() {
            Ok(n) => n,
            Err(_) => continue,
        };
        let data = match data::load(name, data_dir) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("no example masks for {dataset}: {e}");
                continue;
            }
        };
        let n = EXAMPLES.min(data.test.len());
        let examples = data.test.subset(&(0..n).collect::<Vec<_>>());
        let images: Vec<f32> = examples.normalised(&data.info);
        let [c, h, w] = examples.shape;
        let tensor = Tensor::<4>::from_data(TensorData::new(images.clone(), [n, c, h, w]), &device);
        let mut section = String::from("\n## Example masks\n\nThe first test inputs with the mask of each experiment's first run, at its most accurate checkpoint");
        section.push_str(&format!(
            " with Q ≤ {max_q} (removed cells shaded). Xor selections show each input as the client receives it, \
             every cell from its chosen version, with the version-weighted share of bytes in the caption.\n"
        ));
        for exp in loaded.experiments.iter().filter(|e| e.id.dataset == dataset) {
            let Some(run) = exp.runs.first() else { continue };
            let Some(point) = run.summary.curve.best_within(max_q) else { continue };
            let ckpt = run.dir.join(&point.checkpoint);
            let model = SelectionModel::load(&ckpt, &device).with_context(|| format!("loading {}", ckpt.display()))?;
            let Some(mask) = model.mask.as_ref() else { continue };
            let layout = mask.layout().clone();
            // Per-example hard masks, upsampled to the input, and the inputs
            // as drawn (xor: composed of the chosen versions).
            let mut shown = images.clone();
            let mut captions: Vec<String> = examples.labels.iter().map(|l| format!("label {l}")).collect();
            let per_value: Vec<Vec<f32>> = match mask {
                Mask::Static(m) => vec![layout.upsample(&m.hard_values(model.meta.tau)); n],
                Mask::Dynamic(m) => {
                    let hard = m.hard(tensor.clone(), model.meta.tau);
                    let cells: Vec<f32> = hard.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 mask");
                    cells.chunks(layout.n_cells()).map(|c| layout.upsample(c)).collect()
                }
                Mask::Xor(p) => {
                    let Some(MaskConfig::Xor(cfg)) = &model.meta.mask else { continue };
                    let versions = &cfg.xor.versions;
                    let stacked = versions.stack(&examples).with_context(|| format!("versions of the {dataset} examples"))?;
                    let [vc, h, w] = stacked.shape;
                    let values = stacked.normalised(&versions.stacked_info(&data.info));
                    let (x, weights) = p.sent(Tensor::from_data(TensorData::new(values, [n, vc, h, w]), &device), model.meta.tau);
                    shown = x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 inputs");
                    let item = data.info.values_per_item();
                    let mut weights: Vec<f32> = weights.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 weights");
                    if weights.len() == item {
                        weights = weights.repeat(n);
                    }
                    for (caption, w) in captions.iter_mut().zip(weights.chunks(item)) {
                        caption.push_str(&format!(", bytes {:.2}", w.iter().sum::<f32>() / item as f32));
                    }
                    // Drawn as sent or removed; the version shows in the image.
                    weights.chunks(item).map(|w| w.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect()).collect()
                }
            };
            let item = data.info.values_per_item();
            let exs: Vec<MaskExample> = (0..n)
                .map(|k| MaskExample {
                    image: &shown[k * item..(k + 1) * item],
                    mask: &per_value[k],
                    caption: Some(captions[k].as_str()),
                })
                .collect();
            let title = format!("{dataset} · {}/{} (epoch {})", exp.id.mask_type, exp.id.name, point.epoch);
            let stem_name = format!("{}_masks", exp.id.slug());
            let fig = MaskFigure {
                title: &title,
                q: point.q,
                shape: data.info.shape,
                mean: &data.info.mean,
                std: &data.info.std,
                examples: &exs,
                columns: 0,
            };
            let files = mask_figure(&fig, &out.join("figures").join(&stem_name))?;
            written.extend(files);
            section.push_str(&format!(
                "\n**{}/{}**, Q = {:.4}, test accuracy {:.4} ([SVG](figures/{stem_name}.svg))\n\n![masks of {}/{}](figures/{stem_name}.png)\n",
                exp.id.mask_type, exp.id.name, point.q, point.test_accuracy, exp.id.mask_type, exp.id.name
            ));
        }
        let md = out.join(crate::report::page_name(&dataset));
        if md.exists() {
            let mut text = std::fs::read_to_string(&md).with_context(|| format!("reading {}", md.display()))?;
            text.push_str(&section);
            std::fs::write(&md, text).with_context(|| format!("writing {}", md.display()))?;
        }
    }
    Ok(written)
}
