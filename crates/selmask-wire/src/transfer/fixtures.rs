//! Small seeded fixtures for tests and benchmarks: synthetic image sets,
//! random static masks and artifact specs.
//!
//! Public so integration tests and `bench` use the same data; nothing here
//! is for production use. A tiny SplitMix64 generator keeps the crate free of
//! a `rand` dependency and the fixtures identical across versions.

use crate::dataset::{ImageSet, Pixels};
use crate::artifact::format::{
    Accuracies, ArtifactSpec, DatasetSection, MaskSpec, Normalisation, SourceInfo, StoredDtype,
};
use crate::artifact::safetensors::{F32Tensor, TensorMap};

/// SplitMix64: a 64-bit seeded generator, good enough for fixtures.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `n` items of `shape` that look a little like digits: a dark background
/// with a bright random rectangle per item (so zstd finds something to
/// compress, as on real images), labels `0..10`.
pub fn synthetic_set(shape: [usize; 3], n: usize, dtype: StoredDtype, seed: u64) -> ImageSet {
    let mut rng = SplitMix64(seed);
    let [c, h, w] = shape;
    let len = c * h * w;
    let mut raw = vec![0u8; n * len];
    let mut labels = Vec::with_capacity(n);
    for item in raw.chunks_exact_mut(len.max(1)) {
        let (y0, x0) = (rng.below(h), rng.below(w));
        let (y1, x1) = (y0 + 1 + rng.below(h - y0), x0 + 1 + rng.below(w - x0));
        let level = 128 + rng.below(128) as u8;
        for ch in 0..c {
            for y in y0..y1 {
                for x in x0..x1 {
                    item[(ch * h + y) * w + x] = level - (rng.below(4) as u8);
                }
            }
        }
        labels.push(rng.below(10) as u16);
    }
    let pixels = match dtype {
        StoredDtype::U8 => Pixels::U8(raw),
        StoredDtype::F32 => Pixels::F32(raw.iter().map(|&v| v as f32 / 255.0).collect()),
    };
    ImageSet { shape, pixels, labels }
}

/// A 0/1 mask of `n_cells` with exactly `round(q · n_cells)` cells on,
/// chosen at random.
pub fn random_cells(n_cells: usize, q: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let k = ((q * n_cells as f64).round() as usize).min(n_cells);
    let mut order: Vec<usize> = (0..n_cells).collect();
    for i in 0..k {
        let j = i + rng.below(n_cells - i);
        order.swap(i, j);
    }
    let mut cells = vec![0f32; n_cells];
    for &i in &order[..k] {
        cells[i] = 1.0;
    }
    cells
}

/// The dataset section of a synthetic dataset named `name`.
pub fn dataset_section(name: &str, shape: [usize; 3], dtype: StoredDtype) -> DatasetSection {
    DatasetSection {
        name: name.to_string(),
        shape,
        n_classes: 10,
        dtype,
        normalisation: Normalisation {
            mean: vec![0.1307; shape[0]],
            std: vec![0.3081; shape[0]],
            scale: dtype.unit_scale(),
        },
    }
}

/// A complete spec with a tiny two-tensor "network".
pub fn artifact_spec(dataset: DatasetSection, mask: MaskSpec) -> ArtifactSpec {
    let mut weights = TensorMap::new();
    weights.insert(
        "fc.weight".into(),
        F32Tensor {
            shape: vec![10, 4],
            values: (0..40).map(|i| i as f32 / 40.0).collect(),
        },
    );
    weights.insert(
        "fc.bias".into(),
        F32Tensor {
            shape: vec![10],
            values: vec![0.5; 10],
        },
    );
    ArtifactSpec {
        created_by: format!("selmask-transfer {}", env!("CARGO_PKG_VERSION")),
        dataset,
        mask,
        input_drop_upscaling: 1.0,
        accuracy: Accuracies {
            val: Some(0.9),
            test: Some(0.88),
        },
        epoch: 3,
        source: SourceInfo {
            run_dir: "runs/fixture".into(),
            checkpoint: "runs/fixture/checkpoints/best-q0.05".into(),
        },
        network: serde_json::json!({"kind": "fixture", "config": {"hidden": 4}}),
        weights,
    }
}
