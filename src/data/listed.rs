//! Labelled image files listed, not read: training decodes each batch from
//! its files (as PyTorch's `ImageFolder`), so memory holds one batch, not
//! the whole set. Each image is decoded to RGB and resized as torchvision's
//! `Resize(size)` does (shorter side `size`, the longer one
//! `int(size · long / short)`, bilinear); it must come out `size`×`size`,
//! else the error names the file. Folder layouts (which files, which
//! labels) are the sources' business: [`super::ships`] lists the ships'.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;

use super::{DatasetInfo, ImageSet, Pixels};
use crate::error::{Error, Result};

/// Image folders as files, not yet decoded (the ships' [`super::ships::list`]).
#[derive(Debug, Clone)]
pub struct ListedDataset {
    /// Shape, classes, normalisation.
    pub info: DatasetInfo,
    /// The training files (validation is split from them).
    pub train: FileSet,
    /// The test files.
    pub test: FileSet,
}

/// Image files with their labels, decoded and resized when read.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSet {
    /// Side of the square images after resizing.
    pub size: u32,
    /// One file per item.
    pub paths: Vec<PathBuf>,
    /// One label per item.
    pub labels: Vec<u16>,
}

impl FileSet {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no item.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One item's shape `[3, size, size]`.
    pub fn shape(&self) -> [usize; 3] {
        [3, self.size as usize, self.size as usize]
    }

    /// The items at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> FileSet {
        FileSet {
            size: self.size,
            paths: indices.iter().map(|&i| self.paths[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Decodes the items `indices` into `out` (`[N, 3, size, size]`), in
    /// parallel: decoding dominates, and images are independent.
    pub fn read_items(&self, indices: &[usize], out: &mut [u8]) -> Result<()> {
        let item_len = self.shape().iter().product::<usize>();
        assert_eq!(out.len(), indices.len() * item_len, "room for {} items", indices.len());
        out.par_chunks_mut(item_len.max(1))
            .zip(indices.par_iter())
            .try_for_each(|(dst, &i)| read_image(&self.paths[i], self.size, dst))
    }

    /// Checks every file's size from its header (without decoding it).
    pub fn check_sizes(&self) -> Result<()> {
        self.paths.par_iter().try_for_each(|path| {
            let (w, h) = image::image_dimensions(path).map_err(|e| Error::format(path, "image", e.to_string()))?;
            check_dims(path, w, h, self.size)
        })
    }

    /// Every item, decoded.
    pub fn read_all(&self) -> Result<ImageSet> {
        let mut pixels = vec![0u8; self.len() * self.shape().iter().product::<usize>()];
        self.read_items(&(0..self.len()).collect::<Vec<_>>(), &mut pixels)?;
        Ok(ImageSet { shape: self.shape(), pixels: Pixels::U8(pixels), labels: self.labels.clone() })
    }
}

/// Size after torchvision's `Resize(size)`: shorter side `size`, longer
/// side `int(size · long / short)`.
pub fn resized_dims(width: u32, height: u32, size: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| (size as u64 * long as u64 / short.max(1) as u64) as u32;
    if width <= height {
        (size, scaled(height, width))
    } else {
        (scaled(width, height), size)
    }
}

/// Checks that an image of `w`×`h` resizes to `size`×`size`.
pub fn check_dims(path: &Path, w: u32, h: u32, size: u32) -> Result<()> {
    let (nw, nh) = resized_dims(w, h, size);
    if (nw, nh) != (size, size) {
        return Err(Error::format(
            path,
            "image",
            format!("size {w}x{h} becomes {nw}x{nh} with its shorter side resized to {size}, expected {size}x{size}"),
        ));
    }
    Ok(())
}

/// Decodes `path` to RGB, resizes it and writes its `[3, size, size]`
/// planes to `planes`.
pub fn read_image(path: &Path, size: u32, planes: &mut [u8]) -> Result<()> {
    let decoded = image::open(path).map_err(|e| Error::format(path, "image", e.to_string()))?;
    let rgb = decoded.into_rgb8();
    let (w, h) = rgb.dimensions();
    check_dims(path, w, h, size)?;
    let rgb = if (w, h) == (size, size) {
        rgb
    } else {
        image::imageops::resize(&rgb, size, size, FilterType::Triangle)
    };
    let plane = (size * size) as usize;
    for (p, px) in rgb.pixels().enumerate() {
        planes[p] = px[0];
        planes[plane + p] = px[1];
        planes[2 * plane + p] = px[2];
    }
    Ok(())
}
