//! Galaxy10 (SDSS): `Galaxy10.h5`.
//!
//! HDF5 dataset `images` is N×69×69×3 `uint8` (NHWC) and `ans` holds one
//! label per image (0..10; `uint8` in the published file, but any integer
//! or integral float dtype is accepted). Images become `[N, 3, 69, 69]`:
//! height stays height (the paper's code used `transpose(1, 3)`, which also
//! swapped height and width; that slip is not copied). As in the paper, the
//! first `int(0.9·N)` images in file order are the training set and the
//! rest the test set.
//!
//! Read with the pure-Rust `hdf5-pure` crate (no libhdf5 needed), which
//! reads both contiguous and chunked (deflate, shuffle) datasets of files
//! written by h5py/libhdf5 (superblock versions 0 to 3).

use std::path::Path;

use hdf5_pure::{DType, File, FileBuilder, FormatError};

use super::files;
use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use crate::error::{Error, Result};

/// The one file.
pub const FILE: &str = "Galaxy10.h5";

/// What [`Error::Format`] calls the file.
const WHAT: &str = "hdf5 file";

/// Image side in pixels.
const SIDE: usize = 69;

/// Values in one image.
const IMAGE_LEN: usize = 3 * SIDE * SIDE;

/// Number of classes.
const N_CLASSES: usize = 10;

/// Where the dataset is published, for the not-found message.
const HINT: &str = "download Galaxy10.h5 (the original SDSS version, 69x69 images) as described at \
                    https://astronn.readthedocs.io/en/latest/galaxy10.html into the data directory";

/// Shape, classes and the normalisation of the paper's code.
pub fn info() -> DatasetInfo {
    DatasetInfo {
        name: DatasetName::Galaxy10,
        shape: [3, SIDE, SIDE],
        n_classes: N_CLASSES,
        mean: vec![0.04705882, 0.04313726, 0.02745098],
        std: vec![0.06896, 0.06034, 0.0431],
    }
}

/// Number of training items among `n`: Python's `int(0.9 * n)`, computed
/// the same way (in f64) so that the split matches the paper's exactly.
pub fn n_train(n: usize) -> usize {
    (0.9 * n as f64) as usize
}

/// Loads `Galaxy10.h5` and splits it 90/10 in file order.
pub fn load(dir: &Path) -> Result<Dataset> {
    let path = files::require_file(DatasetName::Galaxy10, dir, &[""], FILE, HINT)?;
    let all = read(&path)?;
    let n = all.len();
    let train = all.subset(&(0..n_train(n)).collect::<Vec<_>>());
    let test = all.subset(&(n_train(n)..n).collect::<Vec<_>>());
    Ok(Dataset {
        info: info(),
        train,
        test,
    })
}

/// Reads every image (as `[N, 3, 69, 69]`) and label of the file.
fn read(path: &Path) -> Result<ImageSet> {
    let bad = |reason: String| Error::format(path, WHAT, reason);
    let h5 = |e: hdf5_pure::Error| {
        let truncated = matches!(e, hdf5_pure::Error::Format(FormatError::UnexpectedEof { .. }));
        bad(format!("{e}{}", if truncated { " (truncated?)" } else { "" }))
    };
    // Streaming keeps only the decoded datasets in memory, not the file.
    let file = File::open_streaming(path).map_err(h5)?;
    let keys = file.root().datasets().map_err(h5)?;
    let dataset = |key: &str| {
        if !keys.iter().any(|k| k == key) {
            return Err(bad(format!("key '{key}' not found (keys present: {})", list(&keys))));
        }
        file.dataset(key).map_err(h5)
    };

    let images = dataset("images")?;
    let dtype = images.dtype().map_err(h5)?;
    if dtype != DType::U8 {
        return Err(bad(format!("dataset 'images' has dtype {dtype}, expected u8")));
    }
    let shape = images.shape().map_err(h5)?;
    let n = match shape[..] {
        [n, 69, 69, 3] => n as usize,
        _ => {
            return Err(bad(format!(
                "dataset 'images' has shape {shape:?}, expected [N, 69, 69, 3]"
            )));
        }
    };

    let ans = dataset("ans")?;
    let label_dtype = ans.dtype().map_err(h5)?;
    if !matches!(
        label_dtype,
        DType::U8
            | DType::U16
            | DType::U32
            | DType::U64
            | DType::I8
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::F32
            | DType::F64
    ) {
        return Err(bad(format!(
            "dataset 'ans' has dtype {label_dtype}, expected an integer or float type"
        )));
    }
    let label_shape = ans.shape().map_err(h5)?;
    let n_labels = match label_shape[..] {
        [k] | [k, 1] => k as usize,
        _ => return Err(bad(format!("dataset 'ans' has shape {label_shape:?}, expected [N]"))),
    };
    if n_labels != n {
        return Err(bad(format!(
            "dataset 'images' holds {n} images but 'ans' holds {n_labels} labels"
        )));
    }
    // The declared sizes against the file's real one before anything is
    // read into memory: deflate (HDF5's gzip filter) expands at most
    // ~1032:1, so a header claiming more than that is damaged or hostile.
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let declared = (n as u64).checked_mul(IMAGE_LEN as u64 + 8);
    if declared.is_none_or(|d| d > file_len.saturating_mul(1032)) {
        return Err(bad(format!(
            "datasets declare {n} items of {IMAGE_LEN} bytes each, more than a file of {file_len} bytes can hold"
        )));
    }

    let raw = ans.read_f64().map_err(h5)?;
    let labels = raw
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() != 0.0 || v < 0.0 {
                return Err(bad(format!("label {v} at item {i} is not a class index")));
            }
            if v >= N_CLASSES as f64 {
                return Err(Error::LabelRange {
                    path: path.to_path_buf(),
                    index: i,
                    label: v.min(u32::MAX as f64) as u32,
                    n_classes: N_CLASSES,
                });
            }
            Ok(v as u16)
        })
        .collect::<Result<Vec<u16>>>()?;

    let nhwc = images.read_u8().map_err(h5)?;
    if nhwc.len() != n * IMAGE_LEN {
        return Err(bad(format!(
            "dataset 'images' gave {} values, expected {}",
            nhwc.len(),
            n * IMAGE_LEN
        )));
    }
    Ok(ImageSet {
        shape: [3, SIDE, SIDE],
        pixels: Pixels::U8(nhwc_to_nchw(&nhwc)),
        labels,
    })
}

/// Comma-separated names, or "none".
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `[N, 69, 69, 3]` to `[N, 3, 69, 69]`.
fn nhwc_to_nchw(nhwc: &[u8]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut out = vec![0u8; nhwc.len()];
    for (src, dst) in nhwc.chunks_exact(IMAGE_LEN).zip(out.chunks_exact_mut(IMAGE_LEN)) {
        for (p, rgb) in src.chunks_exact(3).enumerate() {
            dst[p] = rgb[0];
            dst[plane + p] = rgb[1];
            dst[2 * plane + p] = rgb[2];
        }
    }
    out
}

/// `[N, 3, 69, 69]` to `[N, 69, 69, 3]`.
fn nchw_to_nhwc(nchw: &[u8]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut out = vec![0u8; nchw.len()];
    for (src, dst) in nchw.chunks_exact(IMAGE_LEN).zip(out.chunks_exact_mut(IMAGE_LEN)) {
        for (p, rgb) in dst.chunks_exact_mut(3).enumerate() {
            rgb.copy_from_slice(&[src[p], src[plane + p], src[2 * plane + p]]);
        }
    }
    out
}

/// Storage of `ans` in [`write_fixture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelDtype {
    /// `uint8`, as in the published file.
    U8,
    /// `int64`.
    I64,
    /// `float32`.
    F32,
}

/// How [`write_fixture`] lays `images` out.
#[derive(Debug, Clone, Copy)]
pub struct FixtureOptions {
    /// `Some(rows)`: chunked by `rows` images and deflate-compressed (as
    /// h5py's `compression='gzip'`); `None`: contiguous.
    pub chunk_rows: Option<u64>,
    /// Storage of `ans`.
    pub labels: LabelDtype,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            chunk_rows: Some(2),
            labels: LabelDtype::U8,
        }
    }
}

/// Test support: writes `set` (U8 `[3, 69, 69]`, in file order) to
/// `dir/Galaxy10.h5` as the real file is laid out (NHWC `images`, `ans`).
pub fn write_fixture(dir: &Path, set: &ImageSet, options: FixtureOptions) -> Result<()> {
    let Pixels::U8(pixels) = &set.pixels else {
        return Err(Error::config("pixels", "f32", "galaxy10 stores u8 pixels"));
    };
    if set.shape != [3, SIDE, SIDE] {
        return Err(Error::config(
            "shape",
            format!("{:?}", set.shape),
            "galaxy10 images are [3, 69, 69]",
        ));
    }
    let path = dir.join(FILE);
    let mut builder = FileBuilder::new();
    let images = builder
        .create_dataset("images")
        .with_u8_data(&nchw_to_nhwc(pixels))
        .with_shape(&[set.len() as u64, SIDE as u64, SIDE as u64, 3]);
    if let Some(rows) = options.chunk_rows {
        images.with_chunks(&[rows, SIDE as u64, SIDE as u64, 3]).with_deflate(4);
    }
    let labels = builder.create_dataset("ans");
    match options.labels {
        LabelDtype::U8 => labels.with_data(&set.labels.iter().map(|&l| l as u8).collect::<Vec<_>>()),
        LabelDtype::I64 => labels.with_data(&set.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
        LabelDtype::F32 => labels.with_data(&set.labels.iter().map(|&l| l as f32).collect::<Vec<_>>()),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    builder
        .write(&path)
        .map_err(|e| Error::format(&path, WHAT, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` images whose values encode item, channel and position.
    fn set(n: usize) -> ImageSet {
        ImageSet {
            shape: [3, SIDE, SIDE],
            pixels: Pixels::U8((0..n * IMAGE_LEN).map(|i| (i * 37 % 253) as u8).collect()),
            labels: (0..n).map(|i| (i * 7 % 10) as u16).collect(),
        }
    }

    #[test]
    fn fixture_round_trips_and_splits_90_10() {
        for chunk_rows in [None, Some(1), Some(3)] {
            for labels in [LabelDtype::U8, LabelDtype::I64, LabelDtype::F32] {
                let dir = tempfile::tempdir().unwrap();
                let all = set(11);
                write_fixture(dir.path(), &all, FixtureOptions { chunk_rows, labels }).unwrap();
                let data = load(dir.path()).unwrap();
                assert_eq!(
                    data.train,
                    all.subset(&(0..9).collect::<Vec<_>>()),
                    "{chunk_rows:?} {labels:?}"
                );
                assert_eq!(data.test, all.subset(&[9, 10]));
                assert_eq!(data.info, info());
            }
        }
    }

    #[test]
    fn split_matches_python_int() {
        assert_eq!(n_train(10), 9);
        assert_eq!(n_train(11), 9);
        assert_eq!(n_train(21785), 19606);
        assert_eq!(n_train(0), 0);
    }

    /// An h5py 3.16 / HDF5 2.0 file (default, superblock 0, chunked with
    /// gzip): `images[n, h, w, c] = (h + 2w + 5c + 7n) % 256` for 3 images,
    /// `ans = [9, 0, 4]` as uint8.
    const H5PY_FIXTURE: &[u8] = include_bytes!("fixtures/galaxy10_h5py.h5");

    #[test]
    fn reads_a_file_written_by_h5py_with_height_kept_apart_from_width() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), H5PY_FIXTURE).unwrap();
        let all = read(&dir.path().join(FILE)).unwrap();
        assert_eq!(all.labels, vec![9, 0, 4]);
        let Pixels::U8(p) = &all.pixels else { panic!() };
        for n in 0..3 {
            for c in 0..3 {
                for (h, w) in [(0, 1), (4, 5), (68, 0), (1, 68)] {
                    let got = p[n * IMAGE_LEN + c * SIDE * SIDE + h * SIDE + w];
                    assert_eq!(got as usize, (h + 2 * w + 5 * c + 7 * n) % 256, "{n} {c} {h} {w}");
                }
            }
        }
    }

    #[test]
    fn missing_file_says_which_where_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains(&dir.path().join(FILE).display().to_string()), "{msg}");
        assert!(msg.contains("Galaxy10.h5 is missing"), "{msg}");
        assert!(
            msg.contains("https://astronn.readthedocs.io/en/latest/galaxy10.html"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(4), FixtureOptions::default()).unwrap();
        let path = dir.path().join(FILE);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [10, 300, bytes.len() / 2] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "cut {cut}: {err}");
            assert!(err.to_string().contains("invalid hdf5 file"), "{err}");
        }
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("(truncated?)"));
    }

    /// Writes a file with the given `images` and `ans` datasets.
    fn write_raw(dir: &Path, build: impl FnOnce(&mut FileBuilder)) {
        let mut b = FileBuilder::new();
        build(&mut b);
        b.write(dir.join(FILE)).unwrap();
    }

    #[test]
    fn missing_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), |b| {
            b.create_dataset("images")
                .with_u8_data(&vec![0; IMAGE_LEN])
                .with_shape(&[1, 69, 69, 3]);
            b.create_dataset("labels").with_data(&[1u8]);
        });
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.ends_with("Galaxy10.h5: invalid hdf5 file: key 'ans' not found (keys present: images, labels)"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), |b| {
            b.create_dataset("images")
                .with_u8_data(&vec![0; IMAGE_LEN])
                .with_shape(&[1, 3, 69, 69]);
            b.create_dataset("ans").with_data(&[1u8]);
        });
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("dataset 'images' has shape [1, 3, 69, 69], expected [N, 69, 69, 3]"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_dtype_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), |b| {
            b.create_dataset("images")
                .with_data(&vec![0f32; IMAGE_LEN])
                .with_shape(&[1, 69, 69, 3]);
            b.create_dataset("ans").with_data(&[1u8]);
        });
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("dataset 'images' has dtype f32, expected u8"), "{msg}");
    }

    #[test]
    fn bad_labels_are_rejected() {
        for (labels, expected) in [
            (vec![1.0f32, 10.0], "label 10 at item 1 is outside 0..10"),
            (vec![1.5, 2.0], "label 1.5 at item 0 is not a class index"),
            (vec![1.0, -1.0], "label -1 at item 1 is not a class index"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write_raw(dir.path(), |b| {
                b.create_dataset("images")
                    .with_u8_data(&vec![0; 2 * IMAGE_LEN])
                    .with_shape(&[2, 69, 69, 3]);
                b.create_dataset("ans").with_data(&labels);
            });
            let msg = load(dir.path()).unwrap_err().to_string();
            assert!(msg.ends_with(expected), "{msg}");
        }
    }

    #[test]
    fn count_mismatch_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), |b| {
            b.create_dataset("images")
                .with_u8_data(&vec![0; 2 * IMAGE_LEN])
                .with_shape(&[2, 69, 69, 3]);
            b.create_dataset("ans").with_data(&[1u8]);
        });
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("dataset 'images' holds 2 images but 'ans' holds 1 labels"),
            "{msg}"
        );
    }
}
