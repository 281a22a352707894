//! SVHN, cropped digits ("format 2").
//!
//! Files `train_32x32.mat` and `test_32x32.mat` (MATLAB level-5, the real
//! ones zlib-compressed), read with [`super::mat5`]. Variable `X` is a
//! `uint8` array 32×32×3×N, column-major: element (h, w, c, n) at
//! `h + 32·w + 1024·c + 3072·n`. Variable `y` is N×1 (`uint8` or `double`)
//! with labels 1..=10, where 10 stands for the digit 0 and becomes label 0
//! (as torchvision does). The `extra_32x32.mat` set is not used, as in the
//! paper.

use std::path::Path;

use super::files;
use super::mat5::{self, Class, MatFile, Values, Variable};
use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use crate::error::{Error, Result};

/// The training file.
pub const TRAIN_FILE: &str = "train_32x32.mat";

/// The test file.
pub const TEST_FILE: &str = "test_32x32.mat";

/// What [`Error::Format`] calls these files.
const WHAT: &str = "svhn mat file";

/// Pixels in one image plane.
const PLANE: usize = 32 * 32;

/// Where the dataset is published, for the not-found message.
const HINT: &str = "download train_32x32.mat and test_32x32.mat (format 2, cropped digits) from \
                    http://ufldl.stanford.edu/housenumbers/ into the data directory";

/// Shape, classes and the normalisation of the paper's code.
pub fn info() -> DatasetInfo {
    DatasetInfo {
        name: DatasetName::Svhn,
        shape: [3, 32, 32],
        n_classes: 10,
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
    }
}

/// Loads the training and test sets.
pub fn load(dir: &Path) -> Result<Dataset> {
    let train = read_split(&files::require_file(DatasetName::Svhn, dir, &[""], TRAIN_FILE, HINT)?)?;
    let test = read_split(&files::require_file(DatasetName::Svhn, dir, &[""], TEST_FILE, HINT)?)?;
    Ok(Dataset {
        info: info(),
        train,
        test,
    })
}

/// Reads one file into `[N, 3, 32, 32]` images and labels 0..10.
fn read_split(path: &Path) -> Result<ImageSet> {
    let mut mat = MatFile::read(path, &["X", "y"])?;
    let x = mat.take("X")?;
    let y = mat.take("y")?;
    let bad = |reason: String| Error::format(path, WHAT, reason);

    if x.class != Class::UInt8 {
        return Err(bad(format!(
            "variable 'X' has class {}, expected uint8",
            x.class.name()
        )));
    }
    let n = match x.dims[..] {
        [32, 32, 3, n] => n,
        // MATLAB drops trailing singleton dimensions: one image is 32×32×3.
        [32, 32, 3] => 1,
        _ => {
            return Err(bad(format!(
                "variable 'X' has dimensions {:?}, expected [32, 32, 3, N]",
                x.dims
            )));
        }
    };
    let Values::U8(stored) = x.values else {
        return Err(bad("variable 'X' is uint8 but its data is not stored as miUINT8".into()));
    };

    let n_labels = match y.dims[..] {
        [k, 1] | [1, k] => k,
        _ => {
            return Err(bad(format!(
                "variable 'y' has dimensions {:?}, expected [N, 1]",
                y.dims
            )));
        }
    };
    if n_labels != n {
        return Err(bad(format!(
            "variable 'X' holds {n} images but 'y' holds {n_labels} labels"
        )));
    }
    let labels = (0..n)
        .map(|i| {
            let v = y.values.get(i);
            if v.fract() != 0.0 || !(1.0..=10.0).contains(&v) {
                return Err(bad(format!(
                    "label {v} at item {i} is outside 1..=10 (svhn stores the digit 0 as 10)"
                )));
            }
            Ok(if v == 10.0 { 0 } else { v as u16 })
        })
        .collect::<Result<Vec<u16>>>()?;

    Ok(ImageSet {
        shape: [3, 32, 32],
        pixels: Pixels::U8(column_major_to_nchw(&stored)),
        labels,
    })
}

/// Reorders 32×32×3×N column-major values to row-major `[N, 3, 32, 32]`.
///
/// Plane (c, n) starts at `1024·(3n + c)` in both layouts, so only each
/// 32×32 plane is transposed (stored `h + 32w`, wanted `32h + w`).
fn column_major_to_nchw(stored: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; stored.len()];
    for (src, dst) in stored.chunks_exact(PLANE).zip(out.chunks_exact_mut(PLANE)) {
        for (w, column) in src.chunks_exact(32).enumerate() {
            for (h, &v) in column.iter().enumerate() {
                dst[h * 32 + w] = v;
            }
        }
    }
    out
}

/// How [`write_fixture`] stores the labels.
#[derive(Debug, Clone, Copy)]
pub struct FixtureOptions {
    /// zlib-compressed elements, as the real files have.
    pub compress: bool,
    /// Class of `y`: [`Class::UInt8`] (as the real files) or
    /// [`Class::Double`] (as MATLAB and scipy write plain numbers).
    pub label_class: Class,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            compress: true,
            label_class: Class::UInt8,
        }
    }
}

/// Test support: writes `train` and `test` (U8 `[3, 32, 32]`, labels 0..10)
/// to `dir` as the real files are laid out: `X` 32×32×3×N column-major,
/// `y` N×1 with the digit 0 stored as 10.
pub fn write_fixture(dir: &Path, train: &ImageSet, test: &ImageSet, options: FixtureOptions) -> Result<()> {
    for (set, name) in [(train, TRAIN_FILE), (test, TEST_FILE)] {
        let Pixels::U8(pixels) = &set.pixels else {
            return Err(Error::config("pixels", "f32", "svhn stores u8 pixels"));
        };
        if set.shape != [3, 32, 32] {
            return Err(Error::config(
                "shape",
                format!("{:?}", set.shape),
                "svhn images are [3, 32, 32]",
            ));
        }
        // The transpose of a square plane is its own inverse.
        let x = column_major_to_nchw(pixels);
        let stored: Vec<u8> = set.labels.iter().map(|&l| if l == 0 { 10 } else { l as u8 }).collect();
        let values = match options.label_class {
            Class::Double => Values::F64(stored.iter().map(|&l| l as f64).collect()),
            _ => Values::U8(stored),
        };
        let variables = [
            Variable {
                name: "X".into(),
                class: Class::UInt8,
                dims: vec![32, 32, 3, set.len()],
                values: Values::U8(x),
            },
            Variable {
                name: "y".into(),
                class: options.label_class,
                dims: vec![set.len(), 1],
                values,
            },
        ];
        mat5::write(
            &dir.join(name),
            &variables,
            mat5::WriteOptions {
                compress: options.compress,
                big_endian: false,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, seed: usize) -> ImageSet {
        ImageSet {
            shape: [3, 32, 32],
            pixels: Pixels::U8((0..n * 3 * PLANE).map(|i| ((i * 31 + seed) % 251) as u8).collect()),
            labels: (0..n).map(|i| ((i + seed) % 10) as u16).collect(),
        }
    }

    fn write_x_y(path: &Path, x: Variable, y: Variable) {
        mat5::write(path, &[x, y], mat5::WriteOptions::default()).unwrap();
    }

    fn x_var(dims: &[usize], class: Class, values: Values) -> Variable {
        Variable {
            name: "X".into(),
            class,
            dims: dims.to_vec(),
            values,
        }
    }

    fn y_var(labels: &[f64]) -> Variable {
        Variable {
            name: "y".into(),
            class: Class::Double,
            dims: vec![labels.len(), 1],
            values: Values::F64(labels.to_vec()),
        }
    }

    /// A directory with a valid test file, so only the training file matters.
    fn dir_with_test() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(1, 0), &set(1, 0), FixtureOptions::default()).unwrap();
        dir
    }

    #[test]
    fn fixture_round_trips_in_every_storage() {
        for compress in [true, false] {
            for label_class in [Class::UInt8, Class::Double] {
                let dir = tempfile::tempdir().unwrap();
                let (train, test) = (set(7, 3), set(4, 8));
                write_fixture(dir.path(), &train, &test, FixtureOptions { compress, label_class }).unwrap();
                let data = load(dir.path()).unwrap();
                assert_eq!(data.train, train, "{compress} {label_class:?}");
                assert_eq!(data.test, test);
            }
        }
    }

    #[test]
    fn layout_and_label_mapping_are_exact() {
        // X(h, w, c, n) = h + 2w + 5c + 7n (mod 256), written by hand.
        let dir = dir_with_test();
        let n = 2;
        let mut stored = vec![0u8; 3072 * n];
        for n_i in 0..n {
            for c in 0..3 {
                for w in 0..32 {
                    for h in 0..32 {
                        stored[h + 32 * w + 1024 * c + 3072 * n_i] = (h + 2 * w + 5 * c + 7 * n_i) as u8;
                    }
                }
            }
        }
        let path = dir.path().join(TRAIN_FILE);
        write_x_y(
            &path,
            x_var(&[32, 32, 3, n], Class::UInt8, Values::U8(stored)),
            y_var(&[10.0, 3.0]),
        );
        let data = load(dir.path()).unwrap();
        let Pixels::U8(p) = &data.train.pixels else { panic!() };
        for (n_i, c, h, w) in [(0, 0, 0, 1), (0, 2, 5, 3), (1, 1, 31, 0), (1, 2, 7, 30)] {
            assert_eq!(
                p[n_i * 3072 + c * 1024 + h * 32 + w],
                (h + 2 * w + 5 * c + 7 * n_i) as u8
            );
        }
        assert_eq!(data.train.labels, vec![0, 3]);
    }

    #[test]
    fn missing_file_says_which_where_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&dir.path().join(TRAIN_FILE).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("train_32x32.mat is missing"), "{msg}");
        assert!(msg.contains("http://ufldl.stanford.edu/housenumbers/"), "{msg}");
    }

    #[test]
    fn truncated_compressed_file_is_rejected() {
        let dir = dir_with_test();
        write_fixture(dir.path(), &set(3, 0), &set(1, 0), FixtureOptions::default()).unwrap();
        let path = dir.path().join(TRAIN_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn missing_variable_is_rejected() {
        let dir = dir_with_test();
        let path = dir.path().join(TRAIN_FILE);
        mat5::write(&path, &[y_var(&[1.0])], mat5::WriteOptions::default()).unwrap();
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.ends_with("train_32x32.mat: invalid mat file: variable 'X' not found (variables present: y)"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let dir = dir_with_test();
        let path = dir.path().join(TRAIN_FILE);
        write_x_y(
            &path,
            x_var(&[28, 28, 3, 1], Class::UInt8, Values::U8(vec![0; 28 * 28 * 3])),
            y_var(&[1.0]),
        );
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("variable 'X' has dimensions [28, 28, 3, 1], expected [32, 32, 3, N]"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_dtype_is_rejected() {
        let dir = dir_with_test();
        let path = dir.path().join(TRAIN_FILE);
        write_x_y(
            &path,
            x_var(&[32, 32, 3, 1], Class::Double, Values::F64(vec![0.0; 3072])),
            y_var(&[1.0]),
        );
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("variable 'X' has class double, expected uint8"), "{msg}");
    }

    #[test]
    fn count_mismatch_is_rejected() {
        let dir = dir_with_test();
        let path = dir.path().join(TRAIN_FILE);
        write_x_y(
            &path,
            x_var(&[32, 32, 3, 2], Class::UInt8, Values::U8(vec![0; 6144])),
            y_var(&[1.0]),
        );
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("variable 'X' holds 2 images but 'y' holds 1 labels"),
            "{msg}"
        );
    }

    #[test]
    fn bad_labels_are_rejected() {
        for bad in [0.0, 11.0, 2.5] {
            let dir = dir_with_test();
            let path = dir.path().join(TRAIN_FILE);
            write_x_y(
                &path,
                x_var(&[32, 32, 3, 2], Class::UInt8, Values::U8(vec![0; 6144])),
                y_var(&[1.0, bad]),
            );
            let msg = load(dir.path()).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("label {bad} at item 1 is outside 1..=10")),
                "{msg}"
            );
        }
    }
}
