//! What one mask cell covers, and how a cell grid maps onto an input.
//!
//! A granularity turns an input shape `[C, H, W]` into a mask shape
//! `[c, h, w]`. A mask is brought to the input by nearest-neighbour
//! upsampling with PyTorch's rule (`torch.nn.functional.interpolate`,
//! mode `nearest`), so masks trained here and by the reference code cover
//! exactly the same pixels, uneven grids included.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How coarse a selection mask is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    /// `[C, H, W]`: every value of every channel.
    Subpixel,
    /// `[1, H, W]`: a pixel with all its channels.
    Pixel,
    /// `[C, 1, 1]`: a whole band.
    Channel,
    /// `[1, 1, 1]`: a whole input.
    Version,
    /// `[C or 1, H / size, W / size]`: blocks of about `size`×`size` pixels.
    Block { size: usize, per_channel: bool },
    /// `[C or 1, cells, cells]`: a `cells`×`cells` grid of blocks.
    Grid { cells: usize, per_channel: bool },
}

/// The paper's grid names and their cell counts (per-channel names add `sub`).
const GRID_NAMES: [(&str, usize); 5] = [
    ("quadrant", 2),
    ("nondrant", 3),
    ("5drant", 5),
    ("CXLIVdrant", 12),
    ("48drant", 48),
];

/// Every name accepted by [`Granularity::from_str`], for error messages and `--help`.
pub fn valid_names() -> String {
    let mut names: Vec<String> = ["subpixel", "pixel", "channel", "version", "quadsubpixel", "quadpixel"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (name, _) in GRID_NAMES {
        names.push(format!("sub{name}"));
        names.push(name.to_string());
    }
    names.extend(["grid:N", "subgrid:N", "block:N", "subblock:N"].map(String::from));
    names.join(", ")
}

impl FromStr for Granularity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || Error::UnknownGranularity {
            name: s.to_string(),
            valid: valid_names(),
        };
        let g = match s {
            "subpixel" => Granularity::Subpixel,
            "pixel" => Granularity::Pixel,
            "channel" => Granularity::Channel,
            "version" => Granularity::Version,
            "quadsubpixel" => Granularity::Block { size: 4, per_channel: true },
            "quadpixel" => Granularity::Block { size: 4, per_channel: false },
            _ => {
                if let Some((kind, n)) = s.split_once(':') {
                    let n: usize = n.parse().ok().filter(|&n| n > 0).ok_or_else(unknown)?;
                    match kind {
                        "grid" => Granularity::Grid { cells: n, per_channel: false },
                        "subgrid" => Granularity::Grid { cells: n, per_channel: true },
                        "block" => Granularity::Block { size: n, per_channel: false },
                        "subblock" => Granularity::Block { size: n, per_channel: true },
                        _ => return Err(unknown()),
                    }
                } else {
                    let (per_channel, rest) = match s.strip_prefix("sub") {
                        Some(rest) => (true, rest),
                        None => (false, s),
                    };
                    let cells = GRID_NAMES
                        .iter()
                        .find(|(name, _)| *name == rest)
                        .map(|(_, n)| *n)
                        .ok_or_else(unknown)?;
                    Granularity::Grid { cells, per_channel }
                }
            }
        };
        Ok(g)
    }
}

impl fmt::Display for Granularity {
    /// The paper's name where one exists, else the readable alias.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sub = |per_channel: bool| if per_channel { "sub" } else { "" };
        match *self {
            Granularity::Subpixel => write!(f, "subpixel"),
            Granularity::Pixel => write!(f, "pixel"),
            Granularity::Channel => write!(f, "channel"),
            Granularity::Version => write!(f, "version"),
            Granularity::Block { size: 4, per_channel } => write!(f, "quad{}pixel", sub(per_channel)),
            Granularity::Block { size, per_channel } => write!(f, "{}block:{size}", sub(per_channel)),
            Granularity::Grid { cells, per_channel } => {
                match GRID_NAMES.iter().find(|(_, n)| *n == cells) {
                    Some((name, _)) => write!(f, "{}{name}", sub(per_channel)),
                    None => write!(f, "{}grid:{cells}", sub(per_channel)),
                }
            }
        }
    }
}

impl Serialize for Granularity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Granularity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Granularity {
    /// The mask shape `[c, h, w]` for an input of shape `[C, H, W]`.
    pub fn mask_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        let [c, h, w] = input;
        let channels = |per_channel: bool| if per_channel { c } else { 1 };
        let shape_err = |reason: String| Error::GranularityShape {
            name: self.to_string(),
            c,
            h,
            w,
            reason,
        };
        let shape = match *self {
            Granularity::Subpixel => [c, h, w],
            Granularity::Pixel => [1, h, w],
            Granularity::Channel => [c, 1, 1],
            Granularity::Version => [1, 1, 1],
            Granularity::Block { size, per_channel } => {
                if size > h || size > w {
                    return Err(shape_err(format!("blocks of {size} pixels do not fit")));
                }
                [channels(per_channel), h / size, w / size]
            }
            Granularity::Grid { cells, per_channel } => {
                if cells > h || cells > w {
                    return Err(shape_err(format!(
                        "a grid of {cells}x{cells} cells is finer than the input"
                    )));
                }
                [channels(per_channel), cells, cells]
            }
        };
        Ok(shape)
    }

    /// The cell geometry of this granularity on `input`.
    pub fn layout(&self, input: [usize; 3]) -> Result<CellLayout> {
        CellLayout::new(input, self.mask_shape(input)?)
    }
}

/// PyTorch's nearest source index (`nearest_idx` in ATen's `UpSample.h`).
///
/// For output index `dst` on an axis upsampled from `in_size` to `out_size`:
/// the identity when sizes agree, `dst >> 1` when doubling, else
/// `min(floor(dst * (in / out)), in - 1)` computed in `f32`, exactly as ATen
/// does (the `f32` rounding decides the border cell on some uneven grids).
pub fn nearest_source_index(dst: usize, in_size: usize, out_size: usize) -> usize {
    if in_size == out_size {
        dst
    } else if out_size == 2 * in_size {
        dst >> 1
    } else {
        let scale = in_size as f32 / out_size as f32;
        ((dst as f32 * scale).floor() as usize).min(in_size - 1)
    }
}

/// Where every input value falls in a mask grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellLayout {
    /// The input shape `[C, H, W]`.
    pub input: [usize; 3],
    /// The mask shape `[c, h, w]`.
    pub mask: [usize; 3],
    /// For every input value (row-major `[C, H, W]`), its flat cell index.
    pub cell_of_value: Vec<usize>,
    /// For every cell (row-major `[c, h, w]`), how many input values it covers.
    pub values_per_cell: Vec<usize>,
}

impl CellLayout {
    /// Builds the layout of `mask` cells over `input`, with PyTorch's
    /// nearest rule on the spatial axes; a mask with one channel covers all
    /// channels, one with `C` channels maps channel to channel.
    pub fn new(input: [usize; 3], mask: [usize; 3]) -> Result<Self> {
        let [c_in, h_in, w_in] = input;
        let [c_m, h_m, w_m] = mask;
        if !(c_m == 1 || c_m == c_in) || h_m == 0 || w_m == 0 || h_m > h_in || w_m > w_in {
            return Err(Error::GranularityShape {
                name: format!("mask [{c_m}, {h_m}, {w_m}]"),
                c: c_in,
                h: h_in,
                w: w_in,
                reason: "mask must have 1 or C channels and at most the input's height and width"
                    .into(),
            });
        }
        let rows: Vec<usize> = (0..h_in).map(|y| nearest_source_index(y, h_m, h_in)).collect();
        let cols: Vec<usize> = (0..w_in).map(|x| nearest_source_index(x, w_m, w_in)).collect();
        let mut cell_of_value = Vec::with_capacity(c_in * h_in * w_in);
        let mut values_per_cell = vec![0usize; c_m * h_m * w_m];
        for ch in 0..c_in {
            let cm = if c_m == 1 { 0 } else { ch };
            for &r in &rows {
                for &col in &cols {
                    let cell = (cm * h_m + r) * w_m + col;
                    cell_of_value.push(cell);
                    values_per_cell[cell] += 1;
                }
            }
        }
        Ok(CellLayout {
            input,
            mask,
            cell_of_value,
            values_per_cell,
        })
    }

    /// Number of cells in the mask.
    pub fn n_cells(&self) -> usize {
        self.mask.iter().product()
    }

    /// Number of values in one input.
    pub fn n_values(&self) -> usize {
        self.input.iter().product()
    }

    /// The fraction of input values covered by the selected cells.
    ///
    /// `selected` holds one 0/1 (or weight) per cell. On uneven grids this
    /// differs from the cell fraction Q: it is what would really move.
    pub fn value_fraction(&self, selected: &[f32]) -> f64 {
        debug_assert_eq!(selected.len(), self.n_cells());
        let covered: f64 = selected
            .iter()
            .zip(&self.values_per_cell)
            .map(|(&s, &n)| s as f64 * n as f64)
            .sum();
        covered / self.n_values() as f64
    }

    /// Upsamples one mask (flat `[c, h, w]`) to a flat `[C, H, W]` input mask.
    pub fn upsample(&self, mask: &[f32]) -> Vec<f32> {
        self.cell_of_value.iter().map(|&cell| mask[cell]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_every_name() {
        for name in [
            "subpixel", "pixel", "channel", "version", "quadsubpixel", "quadpixel", "subquadrant",
            "quadrant", "subnondrant", "nondrant", "sub5drant", "5drant", "subCXLIVdrant",
            "CXLIVdrant", "sub48drant", "48drant", "grid:7", "subgrid:7", "block:3", "subblock:3",
        ] {
            let g: Granularity = name.parse().unwrap();
            assert_eq!(g.to_string(), name);
        }
    }

    #[test]
    fn aliases_map_to_paper_names() {
        assert_eq!("grid:12".parse::<Granularity>().unwrap().to_string(), "CXLIVdrant");
        assert_eq!("subgrid:12".parse::<Granularity>().unwrap().to_string(), "subCXLIVdrant");
        assert_eq!("block:4".parse::<Granularity>().unwrap().to_string(), "quadpixel");
    }

    #[test]
    fn bad_alias_counts_are_unknown() {
        for name in ["grid:0", "grid:x", "grid:", "tile:3", "Pixel", ""] {
            assert!(
                matches!(name.parse::<Granularity>(), Err(Error::UnknownGranularity { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn pytorch_special_cases() {
        // Same size: identity; exact doubling: shift.
        assert_eq!((0..5).map(|d| nearest_source_index(d, 5, 5)).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!((0..6).map(|d| nearest_source_index(d, 3, 6)).collect::<Vec<_>>(), [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn value_fraction_counts_uneven_cells() {
        // 2 cells on 5 pixels: PyTorch gives cell 0 three pixels, cell 1 two.
        let layout = CellLayout::new([1, 1, 5], [1, 1, 2]).unwrap();
        assert_eq!(layout.values_per_cell, vec![3, 2]);
        assert!((layout.value_fraction(&[1.0, 0.0]) - 0.6).abs() < 1e-12);
        assert!((layout.value_fraction(&[0.0, 1.0]) - 0.4).abs() < 1e-12);
    }
}
