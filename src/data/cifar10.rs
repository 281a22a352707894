//! CIFAR-10, binary version.
//!
//! Files `data_batch_1.bin` … `data_batch_5.bin` (train, in that order) and
//! `test_batch.bin`, directly in the data directory or in the archive's
//! `cifar-10-batches-bin/`. Each record is one label byte (0..10) followed
//! by 3072 pixel bytes: the red, green and blue 32×32 planes, each
//! row-major — already the `[C, H, W]` layout, so records are copied as
//! they are.

use std::path::Path;

use super::files;
use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use crate::error::{Error, Result};

/// The training batch files, in the order their items are concatenated.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";

/// Where the files may sit, relative to the data directory.
pub const SUBDIRS: [&str; 2] = ["", "cifar-10-batches-bin"];

/// Values in one image.
const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Bytes in one record: the label, then the image.
const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// Where the dataset is published, for the not-found message.
const HINT: &str = "download the CIFAR-10 binary version (cifar-10-binary.tar.gz) from \
                    https://www.cs.toronto.edu/~kriz/cifar.html and extract it into the data directory";

/// Shape, classes and the normalisation of the paper's code (ImageNet's).
pub fn info() -> DatasetInfo {
    DatasetInfo {
        name: DatasetName::Cifar10,
        shape: [3, 32, 32],
        n_classes: 10,
        mean: vec![0.485, 0.456, 0.406],
        std: vec![0.229, 0.224, 0.225],
    }
}

/// Loads the five training batches (concatenated in order) and the test batch.
pub fn load(dir: &Path) -> Result<Dataset> {
    let mut train = ImageSet {
        shape: [3, 32, 32],
        pixels: Pixels::U8(Vec::new()),
        labels: Vec::new(),
    };
    for name in TRAIN_FILES {
        let (pixels, labels) = read_batch(&find(dir, name)?)?;
        if let Pixels::U8(all) = &mut train.pixels {
            all.extend_from_slice(&pixels);
        }
        train.labels.extend_from_slice(&labels);
    }
    let (pixels, labels) = read_batch(&find(dir, TEST_FILE)?)?;
    let test = ImageSet {
        shape: [3, 32, 32],
        pixels: Pixels::U8(pixels),
        labels,
    };
    Ok(Dataset {
        info: info(),
        train,
        test,
    })
}

/// Finds `name`, pointing at the Python version when that is what is there.
fn find(dir: &Path, name: &str) -> Result<std::path::PathBuf> {
    files::require_file(DatasetName::Cifar10, dir, &SUBDIRS, name, HINT).map_err(|e| match e {
        Error::DataNotFound { dataset, looked, hint } if dir.join("cifar-10-batches-py").is_dir() => {
            Error::DataNotFound {
                dataset,
                looked,
                hint: format!(
                    "{hint} (found cifar-10-batches-py, the Python version; this loader reads the binary version)"
                ),
            }
        }
        other => other,
    })
}

/// Reads one batch file into pixels `[N, 3, 32, 32]` and labels.
fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u16>)> {
    let bytes = files::read(path)?;
    if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
        let mut reason = format!(
            "size {} bytes is not a positive multiple of the {RECORD_BYTES}-byte record \
             (1 label byte + {IMAGE_BYTES} pixel bytes)",
            bytes.len()
        );
        if !bytes.is_empty() && bytes.len() % (RECORD_BYTES + 1) == 0 {
            reason.push_str("; its size fits cifar-100's 3074-byte records");
        } else if !bytes.is_empty() {
            reason.push_str(&format!(
                "; it holds {} whole records and {} bytes more (truncated?)",
                bytes.len() / RECORD_BYTES,
                bytes.len() % RECORD_BYTES
            ));
        }
        return Err(Error::format(path, "cifar-10 batch file", reason));
    }
    let n = bytes.len() / RECORD_BYTES;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for record in bytes.chunks_exact(RECORD_BYTES) {
        labels.push(record[0] as u16);
        pixels.extend_from_slice(&record[1..]);
    }
    files::check_labels(path, &labels, 10)?;
    Ok((pixels, labels))
}

/// Test support: writes `train` (split into the five batch files in order,
/// as evenly as possible) and `test` in the real binary format under
/// `dir/cifar-10-batches-bin/`.
///
/// Both sets must be U8 `[3, 32, 32]` with labels below 256, and `train`
/// must hold at least five items (the loader rejects empty batch files).
pub fn write_fixture(dir: &Path, train: &ImageSet, test: &ImageSet) -> Result<()> {
    if train.len() < TRAIN_FILES.len() {
        return Err(Error::config(
            "train.len()",
            train.len(),
            "needs at least one item per batch file (5)",
        ));
    }
    let out = dir.join(SUBDIRS[1]);
    let (n, k) = (train.len(), TRAIN_FILES.len());
    for (i, name) in TRAIN_FILES.iter().enumerate() {
        let items: Vec<usize> = (i * n / k..(i + 1) * n / k).collect();
        files::write(&out.join(name), &encode(&train.subset(&items))?)?;
    }
    files::write(&out.join(TEST_FILE), &encode(test)?)
}

/// The records of `set`, label byte then image.
fn encode(set: &ImageSet) -> Result<Vec<u8>> {
    let Pixels::U8(pixels) = &set.pixels else {
        return Err(Error::config("pixels", "f32", "cifar-10 stores u8 pixels"));
    };
    if set.shape != [3, 32, 32] {
        return Err(Error::config(
            "shape",
            format!("{:?}", set.shape),
            "cifar-10 images are [3, 32, 32]",
        ));
    }
    let mut out = Vec::with_capacity(set.len() * RECORD_BYTES);
    for (label, image) in set.labels.iter().zip(pixels.chunks_exact(IMAGE_BYTES)) {
        let label = u8::try_from(*label).map_err(|_| Error::config("label", label, "cifar-10 labels are bytes"))?;
        out.push(label);
        out.extend_from_slice(image);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` images whose values encode item, channel and position.
    fn set(n: usize, seed: u8) -> ImageSet {
        let pixels = (0..n * IMAGE_BYTES)
            .map(|i| ((i * 7 + i / IMAGE_BYTES * 13) as u8).wrapping_add(seed))
            .collect();
        ImageSet {
            shape: [3, 32, 32],
            pixels: Pixels::U8(pixels),
            labels: (0..n).map(|i| ((i * 3 + seed as usize) % 10) as u16).collect(),
        }
    }

    #[test]
    fn fixture_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (train, test) = (set(12, 1), set(3, 5));
        write_fixture(dir.path(), &train, &test).unwrap();
        let data = load(dir.path()).unwrap();
        assert_eq!(data.train, train);
        assert_eq!(data.test, test);
        assert_eq!(data.info, info());
    }

    #[test]
    fn reads_files_directly_in_dir() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(5, 0), &set(1, 0)).unwrap();
        for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
            std::fs::rename(dir.path().join(SUBDIRS[1]).join(name), dir.path().join(name)).unwrap();
        }
        assert_eq!(load(dir.path()).unwrap().train.len(), 5);
    }

    #[test]
    fn pixel_layout_is_channel_planes() {
        // Record: label 7, then R plane all 1, G plane all 2, B plane all 3.
        let dir = tempfile::tempdir().unwrap();
        let mut record = vec![7u8];
        for c in 1..=3u8 {
            record.extend(std::iter::repeat_n(c, 1024));
        }
        for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
            files::write(&dir.path().join(name), &record).unwrap();
        }
        let data = load(dir.path()).unwrap();
        let Pixels::U8(p) = &data.test.pixels else { panic!() };
        assert_eq!((p[0], p[1023], p[1024], p[2047], p[2048], p[3071]), (1, 1, 2, 2, 3, 3));
        assert_eq!(data.test.labels, vec![7]);
    }

    #[test]
    fn missing_file_says_which_where_and_source() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(5, 0), &set(1, 0)).unwrap();
        std::fs::remove_file(dir.path().join(SUBDIRS[1]).join("data_batch_3.bin")).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.starts_with("no cifar10 data found"), "{msg}");
        assert!(msg.contains("data_batch_3.bin is missing"), "{msg}");
        assert!(
            msg.contains(
                &dir.path()
                    .join("cifar-10-batches-bin/data_batch_3.bin")
                    .display()
                    .to_string()
            )
        );
        assert!(msg.contains("https://www.cs.toronto.edu/~kriz/cifar.html"), "{msg}");
    }

    #[test]
    fn python_version_is_pointed_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cifar-10-batches-py")).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("found cifar-10-batches-py, the Python version"), "{msg}");
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(5, 0), &set(2, 0)).unwrap();
        let path = dir.path().join(SUBDIRS[1]).join(TEST_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Format { .. }));
        let msg = err.to_string();
        assert!(msg.contains("invalid cifar-10 batch file: size 6046 bytes"), "{msg}");
        assert!(
            msg.contains("it holds 1 whole records and 2973 bytes more (truncated?)"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_record_shape_is_rejected() {
        // CIFAR-100 records carry two label bytes (3074 bytes each).
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(5, 0), &set(1, 0)).unwrap();
        std::fs::write(dir.path().join(SUBDIRS[1]).join(TEST_FILE), vec![0u8; 3074 * 2]).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("cifar-100"), "{msg}");
    }

    #[test]
    fn empty_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(5, 0), &set(1, 0)).unwrap();
        std::fs::write(dir.path().join(SUBDIRS[1]).join(TEST_FILE), b"").unwrap();
        assert!(matches!(load(dir.path()).unwrap_err(), Error::Format { .. }));
    }

    #[test]
    fn label_out_of_range_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut test = set(2, 0);
        test.labels[1] = 10;
        write_fixture(dir.path(), &set(5, 0), &test).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.ends_with("test_batch.bin: label 10 at item 1 is outside 0..10"),
            "{msg}"
        );
    }
}
