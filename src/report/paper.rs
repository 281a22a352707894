//! The paper's headline numbers, as one table.
//!
//! Copied from the table "Headline numbers to match or beat (read off the
//! paper's figures)" in the reference `METHOD.md` (Oehmcke &
//! Gieseke, SDM 2022). The values are read off figures, hence
//! approximate; edit them there first, then here.
//!
//! Datasets use `selmask`'s names (`fashion_mnist` for the paper's
//! "f-mnist") and methods the run directories' mask types, so that a row
//! can be matched to our runs: the paper's "RF" baseline is our `given`
//! mask type (cells removed in the order of a random-forest importance map).
//! "full" (the network on full data) and "cae" (Concrete Autoencoders) have
//! no mask type of ours; they are shown as references only.

/// One number read off the paper.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperPoint {
    /// Dataset, by `selmask`'s name.
    pub dataset: &'static str,
    /// Method, by our mask type (`static`, `dynamic`, `random`, `given`),
    /// or `full` / `cae`.
    pub method: &'static str,
    /// Q at which the paper shows the accuracy.
    pub q: f64,
    /// Test accuracy read off the paper's figure.
    pub accuracy: f64,
    /// What the paper calls it, with qualifiers ("static, 12×12 grid").
    pub label: &'static str,
}

const fn p(dataset: &'static str, method: &'static str, q: f64, accuracy: f64, label: &'static str) -> PaperPoint {
    PaperPoint { dataset, method, q, accuracy, label }
}

/// Every headline number of METHOD.md, in its order.
pub const PAPER_POINTS: &[PaperPoint] = &[
    p("mnist", "full", 1.0, 0.99, "full data"),
    p("mnist", "static", 0.05, 0.96, "static"),
    p("mnist", "dynamic", 0.05, 0.98, "dynamic"),
    p("mnist", "given", 0.05, 0.90, "RF"),
    p("mnist", "random", 0.05, 0.78, "random"),
    p("mnist", "cae", 0.065, 0.905, "CAE"),
    p("fashion_mnist", "full", 1.0, 0.92, "full data"),
    p("fashion_mnist", "static", 0.05, 0.84, "static"),
    p("fashion_mnist", "dynamic", 0.05, 0.865, "dynamic"),
    p("fashion_mnist", "random", 0.05, 0.78, "random"),
    p("cifar10", "static", 0.30, 0.80, "static"),
    p("cifar10", "dynamic", 0.30, 0.88, "dynamic"),
    p("cifar10", "random", 0.30, 0.73, "random"),
    p("cifar10", "given", 0.30, 0.72, "RF"),
    p("ship", "dynamic", 0.05, 0.91, "dynamic"),
    p("ship", "static", 0.05, 0.81, "static, 12×12 grid"),
    p("svhn", "static", 0.10, 0.94, "static, 12×12 grid"),
];

/// The paper's numbers for `dataset`.
pub fn for_dataset(dataset: &str) -> Vec<PaperPoint> {
    PAPER_POINTS.iter().copied().filter(|p| p.dataset == dataset).collect()
}

/// The paper's number for `method` on `dataset` at `q` (to 1e-6), if any.
pub fn lookup(dataset: &str, method: &str, q: f64) -> Option<PaperPoint> {
    PAPER_POINTS.iter().copied().find(|p| p.dataset == dataset && p.method == method && (p.q - q).abs() < 1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_matches_dataset_method_and_q() {
        assert_eq!(lookup("mnist", "static", 0.05).map(|p| p.accuracy), Some(0.96));
        assert_eq!(lookup("mnist", "given", 0.05).map(|p| p.label), Some("RF"));
        assert!(lookup("mnist", "static", 0.1).is_none());
        assert_eq!(for_dataset("fashion_mnist").len(), 4);
        assert!(for_dataset("f-mnist").is_empty(), "selmask's names only");
    }
}
