//! Ships: image folders built from the Airbus Ship Detection challenge.
//!
//! Layout as torchvision's `ImageFolder`: `train/<class>/…` and
//! `test/<class>/…` holding `.png`, `.jpg` or `.jpeg` files (any case,
//! also in nested folders; other files are ignored). Classes are the sorted
//! names of the sub-directories of `train/` (label = index), items are in
//! sorted path order within each class. A test class folder must also exist
//! under `train/` (torchvision would silently number it on its own).
//!
//! Images are decoded to RGB and resized so that the shorter side is
//! `size` (384 in the paper: the 768×768 originals halved), the longer one
//! `int(size · long / short)` as torchvision's `Resize(int)`, with the
//! `image` crate's triangle (bilinear) filter, which widens its support when
//! shrinking like PIL's antialiased bilinear (close to, not bit-identical
//! with, PIL). The result must be `size`×`size`; other aspect ratios are an
//! error naming the file.
//!
//! Memory: one 384×384 RGB image is 432 KiB, so the full challenge data
//! (~175 000 training images) needs ~77 GB when [`load`]ed; [`list`] keeps
//! only the file names and training reads each batch from its files
//! (`--stream`), or [`ShipsOptions::max_per_class`] caps what is read.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::listed::{FileSet, ListedDataset};
use super::{Dataset, DatasetInfo, DatasetName};
use crate::error::{Error, Result};

/// The paper's image side (768 / 2).
pub const DEFAULT_SIZE: u32 = 384;

/// File extensions read (compared lowercased).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Where the data comes from, for the not-found message.
const HINT: &str = "build train/<class>/ and test/<class>/ image folders (e.g. ship/ and no_ship/) from the \
                    Airbus Ship Detection challenge data on Kaggle \
                    (https://www.kaggle.com/c/airbus-ship-detection) in the data directory";

/// How [`load`] reads the folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipsOptions {
    /// Side of the (square) images after resizing.
    pub size: u32,
    /// Read at most this many images per class and split (the first ones
    /// in sorted order), to bound memory.
    pub max_per_class: Option<usize>,
}

impl Default for ShipsOptions {
    fn default() -> Self {
        ShipsOptions {
            size: DEFAULT_SIZE,
            max_per_class: None,
        }
    }
}

/// Shape, classes and the normalisation of the paper's code.
pub fn info(size: u32, n_classes: usize) -> DatasetInfo {
    DatasetInfo {
        name: DatasetName::Ships,
        shape: [3, size as usize, size as usize],
        n_classes,
        mean: vec![0.20182742, 0.28122104, 0.31776145],
        std: vec![0.2094284, 0.19005547, 0.16852541],
    }
}

/// Loads `dir/train` and `dir/test`.
pub fn load(dir: &Path, options: ShipsOptions) -> Result<Dataset> {
    // Decoding checks every size, so the headers are not read first.
    let listed = list_files(dir, options)?;
    Ok(Dataset { info: listed.info, train: listed.train.read_all()?, test: listed.test.read_all()? })
}

/// Lists `dir/train` and `dir/test` without decoding the images, for
/// training that reads each batch from its files (`--stream`): the memory
/// of a batch instead of the whole data. Every file's header is read here,
/// so a file of another size fails now, naming it, not in the middle of a
/// run.
pub fn list(dir: &Path, options: ShipsOptions) -> Result<ListedDataset> {
    let listed = list_files(dir, options)?;
    listed.train.check_sizes()?;
    listed.test.check_sizes()?;
    Ok(listed)
}

/// The files of `dir/train` and `dir/test`, unchecked.
fn list_files(dir: &Path, options: ShipsOptions) -> Result<ListedDataset> {
    if options.size == 0 {
        return Err(Error::config("size", 0, "images need at least one pixel"));
    }
    let train_dir = split_dir(dir, "train")?;
    let test_dir = split_dir(dir, "test")?;
    let classes = class_names(&train_dir)?;
    if classes.is_empty() {
        return Err(Error::format(
            &train_dir,
            "image folder",
            "holds no class sub-directory",
        ));
    }
    for name in class_names(&test_dir)? {
        if !classes.contains(&name) {
            return Err(Error::format(
                test_dir.join(&name),
                "image folder",
                format!(
                    "class '{name}' is not among the training classes ({})",
                    classes.join(", ")
                ),
            ));
        }
    }
    let train = list_split(&train_dir, &classes, options, true)?;
    let test = list_split(&test_dir, &classes, options, false)?;
    Ok(ListedDataset { info: info(options.size, classes.len()), train, test })
}

/// `dir/name`, which must be a directory.
fn split_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(Error::DataNotFound {
            dataset: DatasetName::Ships.to_string(),
            looked: path.display().to_string(),
            hint: format!("the folder {name}/ is missing; {HINT}"),
        })
    }
}

/// Sorted names of the sub-directories of `dir`.
fn class_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Image files under `dir` (recursively), sorted by path.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let path = entry.map_err(|e| Error::io(&d, e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Lists every class folder of one split; in the training split every
/// class must hold an image.
fn list_split(dir: &Path, classes: &[String], options: ShipsOptions, require_all: bool) -> Result<FileSet> {
    let mut items: Vec<(PathBuf, u16)> = Vec::new();
    for (label, name) in classes.iter().enumerate() {
        let class_dir = dir.join(name);
        if !class_dir.is_dir() {
            continue;
        }
        let mut paths = image_files(&class_dir)?;
        if require_all && paths.is_empty() {
            return Err(Error::format(
                &class_dir,
                "image folder",
                format!("class '{name}' holds no {} image", EXTENSIONS.join("/")),
            ));
        }
        if let Some(cap) = options.max_per_class {
            paths.truncate(cap);
        }
        items.extend(paths.into_iter().map(|p| (p, label as u16)));
    }
    let (paths, labels) = items.into_iter().unzip();
    Ok(FileSet { size: options.size, paths, labels })
}

/// Sampling weight of each item for a class-balanced sampler, as the
/// paper's code computes them: item i of class k gets `1 - n_k / N`, where
/// `n_k` is the size of class k and `N = labels.len()`. The paper draws
/// `min_k n_k` items per epoch without replacement with these weights
/// (`WeightedRandomSampler`), which under-samples the majority class. With a
/// single class every weight is 0.
pub fn class_balanced_weights(labels: &[u16]) -> Vec<f64> {
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let n = labels.len() as f64;
    labels.iter().map(|&l| 1.0 - counts[l as usize] as f64 / n).collect()
}

/// Test support: saves `image` as `dir/<split>/<class>/<file_name>`, the
/// format chosen by the file name's extension.
pub fn write_fixture(dir: &Path, split: &str, class: &str, file_name: &str, image: &RgbImage) -> Result<()> {
    let folder = dir.join(split).join(class);
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let path = folder.join(file_name);
    image
        .save(&path)
        .map_err(|e| Error::format(&path, "image", format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::listed::resized_dims;
    use crate::data::Pixels;
    use image::imageops::FilterType;

    /// A `w`×`h` image whose pixels encode position and `seed`.
    fn picture(w: u32, h: u32, seed: u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 13 + y) as u8 ^ seed,
                (y * 7) as u8,
                seed.wrapping_add((x + y) as u8),
            ])
        })
    }

    /// `[3, H, W]` planes of `img`.
    fn planes(img: &RgbImage) -> Vec<u8> {
        (0..3).flat_map(|c| img.pixels().map(move |p| p[c])).collect()
    }

    fn options(size: u32) -> ShipsOptions {
        ShipsOptions {
            size,
            max_per_class: None,
        }
    }

    #[test]
    fn fixture_round_trips_without_resizing() {
        let dir = tempfile::tempdir().unwrap();
        let imgs: Vec<RgbImage> = (0..4).map(|s| picture(8, 8, s * 40)).collect();
        write_fixture(dir.path(), "train", "ship", "b.png", &imgs[0]).unwrap();
        write_fixture(dir.path(), "train", "ship", "a.PNG", &imgs[1]).unwrap();
        write_fixture(dir.path(), "train", "no_ship", "z.png", &imgs[2]).unwrap();
        write_fixture(dir.path(), "test", "ship", "c.png", &imgs[3]).unwrap();
        std::fs::write(dir.path().join("train/ship/notes.txt"), "ignored").unwrap();
        let data = load(dir.path(), options(8)).unwrap();
        // Classes sorted: no_ship = 0, ship = 1; files sorted within a class.
        assert_eq!(data.train.labels, vec![0, 1, 1]);
        let expected: Vec<u8> = [&imgs[2], &imgs[1], &imgs[0]].iter().flat_map(|i| planes(i)).collect();
        assert_eq!(data.train.pixels, Pixels::U8(expected));
        assert_eq!(data.test.labels, vec![1]);
        assert_eq!(data.test.pixels, Pixels::U8(planes(&imgs[3])));
        assert_eq!(data.info.shape, [3, 8, 8]);
        assert_eq!(data.info.n_classes, 2);
    }

    #[test]
    fn images_are_resized_with_the_triangle_filter() {
        let dir = tempfile::tempdir().unwrap();
        let img = picture(16, 16, 9);
        write_fixture(dir.path(), "train", "a", "x.png", &img).unwrap();
        write_fixture(dir.path(), "train", "a", "y.jpg", &img).unwrap();
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        let data = load(dir.path(), options(8)).unwrap();
        let expected = planes(&image::imageops::resize(&img, 8, 8, FilterType::Triangle));
        let Pixels::U8(p) = &data.train.pixels else { panic!() };
        assert_eq!(&p[..192], &expected[..]);
        assert_eq!(p.len(), 2 * 192);
        assert!(data.test.is_empty());
    }

    #[test]
    fn resized_dims_follow_torchvision() {
        assert_eq!(resized_dims(768, 768, 384), (384, 384));
        assert_eq!(resized_dims(100, 150, 64), (64, 96));
        assert_eq!(resized_dims(150, 100, 64), (96, 64));
        assert_eq!(resized_dims(769, 768, 384), (384, 384));
    }

    #[test]
    fn non_square_image_is_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), "train", "a", "wide.png", &picture(16, 8, 0)).unwrap();
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        let msg = load(dir.path(), options(8)).unwrap_err().to_string();
        assert!(msg.contains("wide.png: invalid image: size 16x8 becomes 16x8"), "{msg}");
    }

    #[test]
    fn corrupt_and_truncated_images_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), "train", "a", "x.png", &picture(8, 8, 0)).unwrap();
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        let path = dir.path().join("train/a/x.png");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(dir.path(), options(8)).unwrap_err();
        assert!(matches!(err, Error::Format { what: "image", .. }), "{err}");
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
        std::fs::write(&path, b"not an image").unwrap();
        assert!(
            load(dir.path(), options(8))
                .unwrap_err()
                .to_string()
                .contains("invalid image")
        );
    }

    #[test]
    fn missing_folders_and_classes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load(dir.path(), options(8)).unwrap_err().to_string();
        assert!(msg.contains(&dir.path().join("train").display().to_string()), "{msg}");
        assert!(msg.contains("the folder train/ is missing"), "{msg}");
        assert!(msg.contains("Airbus Ship Detection"), "{msg}");

        std::fs::create_dir_all(dir.path().join("train/a")).unwrap();
        std::fs::create_dir_all(dir.path().join("test/b")).unwrap();
        write_fixture(dir.path(), "train", "a", "x.png", &picture(8, 8, 0)).unwrap();
        let msg = load(dir.path(), options(8)).unwrap_err().to_string();
        assert!(msg.contains("class 'b' is not among the training classes (a)"), "{msg}");

        std::fs::remove_dir(dir.path().join("test/b")).unwrap();
        std::fs::create_dir_all(dir.path().join("train/c")).unwrap();
        let msg = load(dir.path(), options(8)).unwrap_err().to_string();
        assert!(msg.contains("class 'c' holds no png/jpg/jpeg image"), "{msg}");
    }

    #[test]
    fn cap_keeps_the_first_files_per_class() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["c.png", "a.png", "b.png"].iter().enumerate() {
            write_fixture(dir.path(), "train", "k", name, &picture(4, 4, i as u8)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("test")).unwrap();
        let data = load(
            dir.path(),
            ShipsOptions {
                size: 4,
                max_per_class: Some(2),
            },
        )
        .unwrap();
        let expected: Vec<u8> = [picture(4, 4, 1), picture(4, 4, 2)].iter().flat_map(planes).collect();
        assert_eq!(data.train.pixels, Pixels::U8(expected));
    }

    #[test]
    fn balanced_weights_follow_the_paper() {
        let w = class_balanced_weights(&[0, 0, 0, 1]);
        assert_eq!(w, vec![0.25, 0.25, 0.25, 0.75]);
        // Each class gets the same total weight when there are two classes.
        let labels: Vec<u16> = (0..10).map(|i| u16::from(i < 3)).collect();
        let w = class_balanced_weights(&labels);
        let total = |k: u16| {
            labels
                .iter()
                .zip(&w)
                .filter(|(l, _)| **l == k)
                .map(|(_, w)| w)
                .sum::<f64>()
        };
        assert!((total(0) - total(1)).abs() < 1e-12);
        assert!(class_balanced_weights(&[]).is_empty());
    }
}
