//! Importance maps for the `given` baseline: reading them from NPY files
//! and bringing them to a mask's cell grid.

use std::path::Path;

use crate::error::{Error, Result};
use selmask_wire::granularity::CellLayout;

/// Reads an importance map and returns one importance per cell of `layout`.
///
/// Accepted shapes: the input's `[C, H, W]` (or `[H, W]` for one channel),
/// reduced to cells by averaging the values each cell covers (the
/// reference's adaptive average pooling, on PyTorch's nearest grid); or the
/// mask's own `[c, h, w]`, taken as is. Dtypes f32 or f64.
pub fn read_cell_importance(path: &Path, layout: &CellLayout) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::format(path, "importance map (npy)", reason);
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(e.to_string()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(bad(format!("structured dtype {other:?}, expected float32 or float64"))),
    };
    let width = match dtype.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        other => return Err(bad(format!("dtype {other}, expected float32 or float64"))),
    };
    // Sizes from the header are checked against the bytes there are before
    // anything is allocated from them.
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count.and_then(|c| c.checked_mul(width)).is_none_or(|b| b > bytes.len()) {
        return Err(bad(format!("shape {shape:?} of {width}-byte values needs more than the file's {} bytes", bytes.len())));
    }
    let fortran = npy.order() == npyz::Order::Fortran;
    let values: Vec<f32> = match width {
        4 => npy.into_vec::<f32>().map_err(|e| bad(e.to_string()))?,
        _ => npy.into_vec::<f64>().map_err(|e| bad(e.to_string()))?.into_iter().map(|v| v as f32).collect(),
    };
    // Fortran order stores the first axis fastest: brought to C order here,
    // never read transposed.
    let values = if fortran { fortran_to_c(&values, &shape) } else { values };
    let [c, h, w] = layout.input;
    let input_shapes: Vec<Vec<usize>> = if c == 1 { vec![vec![c, h, w], vec![h, w]] } else { vec![vec![c, h, w]] };
    if input_shapes.contains(&shape) {
        let mut sums = vec![0.0f64; layout.n_cells()];
        for (v, &cell) in values.iter().zip(&layout.cell_of_value) {
            sums[cell] += *v as f64;
        }
        Ok(sums.iter().zip(&layout.values_per_cell).map(|(s, &n)| (s / n as f64) as f32).collect())
    } else if shape == layout.mask.to_vec() {
        Ok(values)
    } else {
        Err(bad(format!(
            "shape {shape:?}; expected the input's {:?} or the mask's {:?}",
            layout.input, layout.mask
        )))
    }
}

/// The values of a Fortran-order array of `shape` in C (row-major) order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (c_index, slot) in out.iter_mut().enumerate() {
        // Multi-index from the C index (last axis fastest), then the
        // Fortran index (first axis fastest) of the same element.
        let (mut rest, mut f_index, mut stride) = (c_index, 0, 1);
        let mut idx = vec![0; shape.len()];
        for (k, &d) in shape.iter().enumerate().rev() {
            idx[k] = rest % d;
            rest /= d;
        }
        for (k, &d) in shape.iter().enumerate() {
            f_index += idx[k] * stride;
            stride *= d;
        }
        *slot = values[f_index];
    }
    out
}

/// Writes an importance map (f32, C order) as NPY.
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    let mut out = Vec::new();
    {
        use npyz::WriterBuilder;
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            .writer(&mut out)
            .begin_nd()
            .map_err(|e| Error::io(path, e))?;
        writer.extend(values.iter().copied()).map_err(|e| Error::io(path, e))?;
        writer.finish().map_err(|e| Error::io(path, e))?;
    }
    Ok(selmask_wire::util::atomic_write(path, &out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use selmask_wire::granularity::Granularity;

    #[test]
    fn input_maps_are_averaged_per_cell_and_mask_maps_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layout = "quadrant".parse::<Granularity>().unwrap().layout([1, 4, 4]).unwrap();
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let p = dir.path().join("input.npy");
        write_npy(&p, &[4, 4], &input).unwrap();
        // Cell 0 covers rows 0-1, columns 0-1: 0, 1, 4, 5.
        assert_eq!(read_cell_importance(&p, &layout).unwrap(), vec![2.5, 4.5, 10.5, 12.5]);
        let p = dir.path().join("mask.npy");
        write_npy(&p, &[1, 2, 2], &[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!(read_cell_importance(&p, &layout).unwrap(), vec![4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn wrong_shapes_and_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = "pixel".parse::<Granularity>().unwrap().layout([1, 4, 4]).unwrap();
        let p = dir.path().join("bad.npy");
        write_npy(&p, &[3, 3], &[0.0; 9]).unwrap();
        let msg = read_cell_importance(&p, &layout).unwrap_err().to_string();
        assert!(msg.contains("bad.npy") && msg.contains("shape [3, 3]") && msg.contains("[1, 4, 4]"), "{msg}");
        std::fs::write(&p, b"not numpy").unwrap();
        assert!(read_cell_importance(&p, &layout).unwrap_err().to_string().contains("bad.npy"));
        let msg = read_cell_importance(&dir.path().join("missing.npy"), &layout).unwrap_err().to_string();
        assert!(msg.contains("missing.npy"), "{msg}");
    }
}
