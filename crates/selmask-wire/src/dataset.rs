//! What a dataset is, for every layer: its name, its shape, classes and
//! normalisation ([`DatasetInfo`]), and a set of items in their stored dtype
//! ([`ImageSet`], [`Pixels`]). The loaders (main crate) produce these; the
//! artifact format, the server and the client read them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The datasets `selmask` knows, by the paper's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    /// MNIST digits, 28×28×1.
    Mnist,
    /// Fashion-MNIST, 28×28×1.
    FashionMnist,
    /// Generated data whose labels depend only on known cells.
    Synthetic,
    /// CIFAR-10 (binary version), 32×32×3.
    Cifar10,
    /// SVHN cropped digits (format 2), 32×32×3.
    Svhn,
    /// Galaxy10 (SDSS), 69×69×3.
    Galaxy10,
    /// The paper's remote sensing data, 35×35×36.
    Remote,
    /// Airbus ship / no-ship image folders, 384×384×3.
    Ships,
}

impl DatasetName {
    /// All names, for messages.
    pub const ALL: [DatasetName; 8] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Synthetic,
        DatasetName::Cifar10,
        DatasetName::Svhn,
        DatasetName::Galaxy10,
        DatasetName::Remote,
        DatasetName::Ships,
    ];

    /// The paper's name (`fashion_mnist`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion_mnist",
            DatasetName::Synthetic => "synthetic",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Svhn => "svhn",
            DatasetName::Galaxy10 => "galaxy10",
            DatasetName::Remote => "remote",
            DatasetName::Ships => "ships",
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion_mnist" | "fashion-mnist" | "f-mnist" | "fmnist" => Ok(DatasetName::FashionMnist),
            "synthetic" => Ok(DatasetName::Synthetic),
            "cifar10" | "cifar" => Ok(DatasetName::Cifar10),
            "svhn" => Ok(DatasetName::Svhn),
            "galaxy10" | "galaxy" => Ok(DatasetName::Galaxy10),
            "remote" | "remotesensing" | "remote_sensing" | "remote-sensing" => Ok(DatasetName::Remote),
            "ships" | "ship" => Ok(DatasetName::Ships),
            _ => Err(Error::UnknownDataset {
                name: s.to_string(),
                valid: "mnist, fashion_mnist (also f-mnist, fashion-mnist), synthetic, \
                        cifar10 (also cifar), svhn, galaxy10 (also galaxy), \
                        remote (also remotesensing, remote_sensing), ships (also ship)"
                    .into(),
            }),
        }
    }
}

/// Shape, classes and normalisation of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Which dataset.
    pub name: DatasetName,
    /// One input's shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Number of classes.
    pub n_classes: usize,
    /// Per-channel mean subtracted after scaling values to [0, 1].
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

impl DatasetInfo {
    /// Values in one input.
    pub fn values_per_item(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Stored values of a set of inputs, in their on-disk dtype.
///
/// Kept as stored so that a storage server can send exactly these bytes;
/// conversion to normalised f32 happens once, when a split becomes a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// 8-bit images (scaled by 1/255 before normalisation).
    U8(Vec<u8>),
    /// Floating-point measurements (normalised as they are).
    F32(Vec<f32>),
}

impl Pixels {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The scale of a stored value before normalisation: 1/255 for 8-bit
    /// pixels, 1 for floats.
    pub fn unit(&self) -> f32 {
        match self {
            Pixels::U8(_) => 1.0 / 255.0,
            Pixels::F32(_) => 1.0,
        }
    }

    /// Bytes per stored value.
    pub fn value_bytes(&self) -> usize {
        match self {
            Pixels::U8(_) => 1,
            Pixels::F32(_) => 4,
        }
    }

    /// An empty container of the same dtype with room for `n` values.
    fn empty_like(&self, n: usize) -> Pixels {
        match self {
            Pixels::U8(_) => Pixels::U8(Vec::with_capacity(n)),
            Pixels::F32(_) => Pixels::F32(Vec::with_capacity(n)),
        }
    }

    /// Appends values `range` of `other` (same dtype).
    fn extend_from(&mut self, other: &Pixels, range: std::ops::Range<usize>) {
        match (self, other) {
            (Pixels::U8(a), Pixels::U8(b)) => a.extend_from_slice(&b[range]),
            (Pixels::F32(a), Pixels::F32(b)) => a.extend_from_slice(&b[range]),
            _ => unreachable!("pixel dtypes of one set never differ"),
        }
    }

    /// Value `i` as f32, unscaled.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Pixels::U8(v) => v[i] as f32,
            Pixels::F32(v) => v[i],
        }
    }
}

/// A set of labelled inputs, row-major `[N, C, H, W]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// One input's shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// All values, item after item.
    pub pixels: Pixels,
    /// One label per item.
    pub labels: Vec<u16>,
}

impl ImageSet {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no item.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values in one item.
    pub fn item_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The items at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.item_len();
        let mut pixels = self.pixels.empty_like(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from(&self.pixels, i * n..(i + 1) * n);
            labels.push(self.labels[i]);
        }
        ImageSet {
            shape: self.shape,
            pixels,
            labels,
        }
    }

    /// Keeps only the items `indices` (ascending, no repeats), in place.
    ///
    /// # Panics
    /// If `indices` is not ascending or names an item past the end.
    pub fn retain_items(&mut self, indices: &[usize]) {
        assert!(indices.windows(2).all(|w| w[0] < w[1]), "retain_items needs ascending indices");
        let n = self.item_len();
        // Item k moves from i >= k: forward copies never overwrite an item
        // still to be moved.
        for (k, &i) in indices.iter().enumerate() {
            match &mut self.pixels {
                Pixels::U8(v) => v.copy_within(i * n..(i + 1) * n, k * n),
                Pixels::F32(v) => v.copy_within(i * n..(i + 1) * n, k * n),
            }
            self.labels[k] = self.labels[i];
        }
        let kept = indices.len();
        match &mut self.pixels {
            Pixels::U8(v) => {
                v.truncate(kept * n);
                v.shrink_to_fit();
            }
            Pixels::F32(v) => {
                v.truncate(kept * n);
                v.shrink_to_fit();
            }
        }
        self.labels.truncate(kept);
        self.labels.shrink_to_fit();
    }

    /// Normalised f32 values, `(v * scale - mean[c]) / std[c]` with
    /// `scale` = 1/255 for u8 and 1 for f32, row-major `[N, C, H, W]`.
    pub fn normalised(&self, info: &DatasetInfo) -> Vec<f32> {
        let mut values: Vec<f32> = (0..self.pixels.len()).map(|i| self.pixels.get(i)).collect();
        normalise_in_place(&mut values, self.shape, self.pixels.unit(), info);
        values
    }
}

/// Normalises raw values of items `shape` = `[C, H, W]` in place:
/// `(v * unit - mean[c]) / std[c]`, with `unit` the stored scale (1/255 for
/// 8-bit pixels, see [`Pixels::unit`]) and `info`'s per-channel mean and std.
pub fn normalise_in_place(values: &mut [f32], [c, h, w]: [usize; 3], unit: f32, info: &DatasetInfo) {
    let plane = h * w;
    let coef: Vec<(f32, f32)> = (0..c).map(|ch| (unit / info.std[ch], info.mean[ch] / info.std[ch])).collect();
    for (i, v) in values.iter_mut().enumerate() {
        let (a, b) = coef[(i / plane.max(1)) % c];
        *v = *v * a - b;
    }
}

