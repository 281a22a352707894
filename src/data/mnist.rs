//! MNIST and Fashion-MNIST from their IDX files.

use std::path::Path;

use super::idx::{read_images, read_labels};
use super::locate::{MNIST_FILES, find_file};
use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use crate::error::{Error, Result};

/// Shape, classes and the paper's normalisation (both use MNIST's 0.1307/0.3081).
pub fn info(name: DatasetName) -> DatasetInfo {
    DatasetInfo {
        name,
        shape: [1, 28, 28],
        n_classes: 10,
        mean: vec![0.1307],
        std: vec![0.3081],
    }
}

/// Reads one split (images + labels) and checks they agree.
fn read_split(dir: &Path, images: &str, labels: &str, n_classes: usize) -> Result<ImageSet> {
    let missing = |stem: &str| {
        Error::io(
            dir.join(stem),
            std::io::Error::new(std::io::ErrorKind::NotFound, "file (or .gz) not found"),
        )
    };
    let img_path = find_file(dir, images).ok_or_else(|| missing(images))?;
    let lbl_path = find_file(dir, labels).ok_or_else(|| missing(labels))?;
    let img = read_images(&img_path)?;
    let lbl = read_labels(&lbl_path)?;
    let (n_images, n_labels) = (img.dims[0] as usize, lbl.dims[0] as usize);
    if n_images != n_labels {
        return Err(Error::CountMismatch {
            images: img_path,
            labels: lbl_path,
            n_images,
            n_labels,
        });
    }
    if let Some((index, &label)) = lbl.data.iter().enumerate().find(|(_, l)| **l as usize >= n_classes) {
        return Err(Error::LabelRange {
            path: lbl_path,
            index,
            label: label as u32,
            n_classes,
        });
    }
    Ok(ImageSet {
        shape: [1, img.dims[1] as usize, img.dims[2] as usize],
        pixels: Pixels::U8(img.data),
        labels: lbl.data.into_iter().map(u16::from).collect(),
    })
}

/// Loads both splits from `dir`.
pub fn load(name: DatasetName, dir: &Path) -> Result<Dataset> {
    let mut info = info(name);
    let train = read_split(dir, MNIST_FILES[0], MNIST_FILES[1], info.n_classes)?;
    let test = read_split(dir, MNIST_FILES[2], MNIST_FILES[3], info.n_classes)?;
    if train.shape != test.shape {
        return Err(Error::config(
            "data-dir",
            dir.display(),
            format!("train images are {:?} but test images are {:?}", train.shape, test.shape),
        ));
    }
    info.shape = train.shape;
    Ok(Dataset { info, train, test })
}
