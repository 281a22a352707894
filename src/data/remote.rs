//! The paper's remote sensing data: `X_train.npy` and `y_train.npy`.
//!
//! `X_train.npy` is N×35×35×36 (NHWC: 36 bands), dtype float32, float64,
//! uint8, uint16 or int16, either byte order, C or Fortran order.
//! `y_train.npy` holds N integer labels (shape `[N]` or `[N, 1]`) in 0..13.
//! Images become `[N, 36, 35, 35]`; uint8 stays [`Pixels::U8`], every other
//! dtype becomes [`Pixels::F32`].
//!
//! There is no separate test file: as in the paper, the items are split
//! 50/50 by a seeded permutation (first `N / 2` of it train, rest test).
//! The permutation comes from `ChaCha8Rng::seed_from_u64(seed)`, so it is
//! not numpy's (the paper's code used `RandomState(42)`), but it is just as
//! fixed: pass [`SPLIT_SEED`] to keep one split across training seeds.
//!
//! Normalisation is per band, with mean and standard deviation (population,
//! ddof = 0) computed from the **training half only**, in the units
//! [`super::ImageSet::normalised`] works in (u8 values scaled by 1/255,
//! others as stored). The paper's code used each band's mean as its std by
//! mistake; that is not copied. A constant band gets std 1.

use std::io::Read;
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar, TypeStr, WriterBuilder};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::files;
use super::{Dataset, DatasetInfo, DatasetName, ImageSet, Pixels};
use crate::error::{Error, Result};

/// The image file.
pub const IMAGES_FILE: &str = "X_train.npy";

/// The label file.
pub const LABELS_FILE: &str = "y_train.npy";

/// The seed of the paper's split (numpy's `RandomState(42)` there).
pub const SPLIT_SEED: u64 = 42;

/// Number of classes.
pub const N_CLASSES: usize = 13;

/// Bands (channels) per image.
const BANDS: usize = 36;

/// Image side in pixels.
const SIDE: usize = 35;

/// Values in one image.
const ITEM_LEN: usize = BANDS * SIDE * SIDE;

/// What [`Error::Format`] calls these files.
const WHAT: &str = "npy file";

/// Where the data comes from, for the not-found message.
const HINT: &str = "the remote sensing arrays are those of the paper's repository \
                    github.com/StefOe/selection-masks (see its README; its code reads them from \
                    data/remote_sensing_change/); put X_train.npy and y_train.npy in the data directory";

/// Shape, classes and the given per-band normalisation.
pub fn info(mean: Vec<f32>, std: Vec<f32>) -> DatasetInfo {
    DatasetInfo {
        name: DatasetName::Remote,
        shape: [BANDS, SIDE, SIDE],
        n_classes: N_CLASSES,
        mean,
        std,
    }
}

/// Loads both files, splits them by `seed` and computes the normalisation
/// from the training half.
pub fn load(dir: &Path, seed: u64) -> Result<Dataset> {
    let x_path = files::require_file(DatasetName::Remote, dir, &[""], IMAGES_FILE, HINT)?;
    let y_path = files::require_file(DatasetName::Remote, dir, &[""], LABELS_FILE, HINT)?;
    let pixels = read_images(&x_path)?;
    let labels = read_labels(&y_path)?;
    let n_images = pixels.len() / ITEM_LEN;
    if n_images != labels.len() {
        return Err(Error::CountMismatch {
            images: x_path,
            labels: y_path,
            n_images,
            n_labels: labels.len(),
        });
    }
    let all = ImageSet {
        shape: [BANDS, SIDE, SIDE],
        pixels,
        labels,
    };

    let mut order: Vec<usize> = (0..all.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_train = all.len() / 2;
    let train = all.subset(&order[..n_train]);
    let test = all.subset(&order[n_train..]);
    drop(all);

    let (mean, std) = band_stats(&train);
    if let Some(c) = mean.iter().chain(&std).position(|v| !v.is_finite()) {
        return Err(Error::format(
            &x_path,
            WHAT,
            format!("band {} of the training half holds non-finite values", c % BANDS),
        ));
    }
    Ok(Dataset {
        info: info(mean, std),
        train,
        test,
    })
}

/// Per-band mean and population std of `set`, in normalisation units.
pub fn band_stats(set: &ImageSet) -> (Vec<f32>, Vec<f32>) {
    let [c, h, w] = set.shape;
    let plane = h * w;
    let unit = match set.pixels {
        Pixels::U8(_) => 1.0 / 255.0,
        Pixels::F32(_) => 1.0,
    };
    // Two passes in f64: the one-pass sum of squares loses precision on
    // large, offset values.
    let mut sum = vec![0f64; c];
    for i in 0..set.pixels.len() {
        sum[(i / plane) % c] += set.pixels.get(i) as f64;
    }
    let count = (set.len() * plane).max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let mut sq = vec![0f64; c];
    for i in 0..set.pixels.len() {
        let band = (i / plane) % c;
        let d = set.pixels.get(i) as f64 - mean[band];
        sq[band] += d * d;
    }
    let std = sq
        .iter()
        .map(|s| {
            let sd = (s / count).sqrt() * unit;
            if sd > 0.0 { sd as f32 } else { 1.0 }
        })
        .collect();
    (mean.iter().map(|m| (m * unit) as f32).collect(), std)
}

/// Opens an npy file, with header errors as [`Error::Format`].
fn open(path: &Path) -> Result<NpyFile<impl Read>> {
    NpyFile::new(files::open(path)?).map_err(|e| Error::format(path, WHAT, format!("cannot read the npy header: {e}")))
}

/// The dtype's type string, or a reason it has none.
fn type_str<'a>(path: &Path, dtype: &'a DType) -> Result<&'a TypeStr> {
    match dtype {
        DType::Plain(ts) => Ok(ts),
        other => Err(Error::format(
            path,
            WHAT,
            format!("structured dtype {other:?} is not supported"),
        )),
    }
}

/// Checks that `n` items of `per_item` values of `width` bytes fit in the
/// file (NPY data is stored uncompressed), with checked arithmetic, before
/// anything is sized from the header's `n`.
fn check_declared(path: &Path, n: usize, per_item: usize, width: usize) -> Result<()> {
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let declared = (n as u64).checked_mul(per_item as u64).and_then(|v| v.checked_mul(width as u64));
    match declared {
        Some(d) if d <= file_len => Ok(()),
        _ => Err(Error::format(
            path,
            WHAT,
            format!("header declares {n} items of {per_item} values of {width} bytes, more than the file's {file_len} bytes (truncated?)"),
        )),
    }
}

/// Reads `X_train.npy` into `[N, 36, 35, 35]`.
fn read_images(path: &Path) -> Result<Pixels> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    let n = match shape[..] {
        [n, 35, 35, 36] => n as usize,
        _ => {
            return Err(Error::format(
                path,
                WHAT,
                format!("array has shape {shape:?}, expected [N, 35, 35, 36]"),
            ));
        }
    };
    let fortran = npy.order() == Order::Fortran;
    let dtype = npy.dtype();
    let ts = type_str(path, &dtype)?;
    check_declared(path, n, ITEM_LEN, ts.size_field() as usize)?;
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Uint, 1) => Ok(Pixels::U8(read_nchw::<u8, u8>(path, npy, n, fortran, |v| v)?)),
        (TypeChar::Float, 4) => Ok(Pixels::F32(read_nchw::<f32, f32>(path, npy, n, fortran, |v| v)?)),
        (TypeChar::Float, 8) => Ok(Pixels::F32(read_nchw::<f64, f32>(path, npy, n, fortran, |v| v as f32)?)),
        (TypeChar::Uint, 2) => Ok(Pixels::F32(read_nchw::<u16, f32>(path, npy, n, fortran, |v| v as f32)?)),
        (TypeChar::Int, 2) => Ok(Pixels::F32(read_nchw::<i16, f32>(path, npy, n, fortran, |v| v as f32)?)),
        _ => Err(Error::format(
            path,
            WHAT,
            format!("dtype '{ts}' is not supported (expected float32, float64, uint8, uint16 or int16)"),
        )),
    }
}

/// Streams `n` NHWC images (C or Fortran order) into `[N, C, H, W]`,
/// converting each value with `conv`.
fn read_nchw<T: npyz::Deserialize, O: Copy + Default>(
    path: &Path,
    npy: NpyFile<impl Read>,
    n: usize,
    fortran: bool,
    conv: impl Fn(T) -> O,
) -> Result<Vec<O>> {
    let total = n * ITEM_LEN;
    let reader = npy
        .data::<T>()
        .map_err(|e| Error::format(path, WHAT, format!("cannot read values: {e}")))?;
    let truncated = |i: usize, e: std::io::Error| {
        Error::format(
            path,
            WHAT,
            format!("data ends after {i} of {total} values ({e}); truncated?"),
        )
    };
    let mut out = vec![O::default(); total];
    let plane = SIDE * SIDE;
    let mut values = reader.enumerate();
    if fortran {
        // Element (n, h, w, c) is stored at n + N·(h + 35·(w + 35·c)).
        for (i, v) in values.by_ref().take(total) {
            let v = v.map_err(|e| truncated(i, e))?;
            let (item, rest) = (i % n, i / n);
            let (h, w, c) = (rest % SIDE, (rest / SIDE) % SIDE, rest / plane);
            out[item * ITEM_LEN + c * plane + h * SIDE + w] = conv(v);
        }
    } else {
        // One item at a time: scatter its pixel-major values band-major.
        // On the heap: 44 100 values are too many for a stack array.
        let mut item: Box<[O]> = vec![O::default(); ITEM_LEN].into_boxed_slice();
        for dst in out.chunks_exact_mut(ITEM_LEN) {
            for slot in item.iter_mut() {
                let (i, v) = values
                    .next()
                    .unwrap_or((total, Err(std::io::ErrorKind::UnexpectedEof.into())));
                *slot = conv(v.map_err(|e| truncated(i, e))?);
            }
            for (p, bands) in item.chunks_exact(BANDS).enumerate() {
                for (c, &v) in bands.iter().enumerate() {
                    dst[c * plane + p] = v;
                }
            }
        }
    }
    Ok(out)
}

/// Reads `y_train.npy`: integer labels in 0..13.
fn read_labels(path: &Path) -> Result<Vec<u16>> {
    let npy = open(path)?;
    let shape = npy.shape().to_vec();
    let n = match shape[..] {
        [n] | [n, 1] => n as usize,
        _ => {
            return Err(Error::format(
                path,
                WHAT,
                format!("labels have shape {shape:?}, expected [N]"),
            ));
        }
    };
    let dtype = npy.dtype();
    let ts = type_str(path, &dtype)?;
    check_declared(path, n, 1, ts.size_field() as usize)?;
    let raw: Vec<i64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Uint, 1) => read_all::<u8>(path, npy, n, |v| v as i64)?,
        (TypeChar::Uint, 2) => read_all::<u16>(path, npy, n, |v| v as i64)?,
        (TypeChar::Uint, 4) => read_all::<u32>(path, npy, n, |v| v as i64)?,
        (TypeChar::Uint, 8) => read_all::<u64>(path, npy, n, |v| v.min(i64::MAX as u64) as i64)?,
        (TypeChar::Int, 1) => read_all::<i8>(path, npy, n, |v| v as i64)?,
        (TypeChar::Int, 2) => read_all::<i16>(path, npy, n, |v| v as i64)?,
        (TypeChar::Int, 4) => read_all::<i32>(path, npy, n, |v| v as i64)?,
        (TypeChar::Int, 8) => read_all::<i64>(path, npy, n, |v| v)?,
        _ => {
            return Err(Error::format(
                path,
                WHAT,
                format!("label dtype '{ts}' is not an integer type"),
            ));
        }
    };
    raw.iter()
        .enumerate()
        .map(|(index, &v)| {
            if v < 0 {
                Err(Error::format(
                    path,
                    WHAT,
                    format!("label {v} at item {index} is not a class index"),
                ))
            } else if v as u64 >= N_CLASSES as u64 {
                Err(Error::LabelRange {
                    path: path.to_path_buf(),
                    index,
                    label: v.min(u32::MAX as i64) as u32,
                    n_classes: N_CLASSES,
                })
            } else {
                Ok(v as u16)
            }
        })
        .collect()
}

/// Reads `n` values of type `T`, converted by `conv`.
fn read_all<T: npyz::Deserialize>(
    path: &Path,
    npy: NpyFile<impl Read>,
    n: usize,
    conv: impl Fn(T) -> i64,
) -> Result<Vec<i64>> {
    let reader = npy
        .data::<T>()
        .map_err(|e| Error::format(path, WHAT, format!("cannot read values: {e}")))?;
    let mut out = Vec::with_capacity(n);
    for (i, v) in reader.enumerate().take(n) {
        let v = v.map_err(|e| {
            Error::format(
                path,
                WHAT,
                format!("data ends after {i} of {n} values ({e}); truncated?"),
            )
        })?;
        out.push(conv(v));
    }
    Ok(out)
}

/// Storage of `X_train.npy` in [`write_fixture`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageDtype {
    /// `<f4`.
    F32,
    /// `>f4` (big-endian).
    F32BigEndian,
    /// `<f8`.
    F64,
    /// `|u1`.
    U8,
    /// `<u2`.
    U16,
    /// `<i2`.
    I16,
}

/// How [`write_fixture`] writes the files.
#[derive(Debug, Clone, Copy)]
pub struct FixtureOptions {
    /// dtype of `X_train.npy`.
    pub images: ImageDtype,
    /// Fortran (column-major) order instead of C order for `X_train.npy`.
    pub fortran: bool,
    /// Labels as `<i8` (numpy's default integer) instead of `|u1`.
    pub labels_i64: bool,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            images: ImageDtype::F32,
            fortran: false,
            labels_i64: true,
        }
    }
}

/// Test support: writes `set` (`[36, 35, 35]`, NCHW) to `dir` as the real
/// files are laid out: `X_train.npy` N×35×35×36 and `y_train.npy` `[N]`.
/// Values are cast to the requested dtype (so integer dtypes need integral
/// values in range).
pub fn write_fixture(dir: &Path, set: &ImageSet, options: FixtureOptions) -> Result<()> {
    if set.shape != [BANDS, SIDE, SIDE] {
        return Err(Error::config(
            "shape",
            format!("{:?}", set.shape),
            "remote sensing images are [36, 35, 35]",
        ));
    }
    let n = set.len();
    let plane = SIDE * SIDE;
    // Value at (item, h, w, band) in the file's order.
    let nhwc_index = |i: usize| -> usize {
        let (item, h, w, c) = if options.fortran {
            let rest = i / n;
            (i % n, rest % SIDE, (rest / SIDE) % SIDE, rest / plane)
        } else {
            (i / ITEM_LEN, (i / (SIDE * BANDS)) % SIDE, (i / BANDS) % SIDE, i % BANDS)
        };
        item * ITEM_LEN + c * plane + h * SIDE + w
    };
    let values = (0..n * ITEM_LEN).map(|i| set.pixels.get(nhwc_index(i)));
    let shape = [n as u64, SIDE as u64, SIDE as u64, BANDS as u64];
    let order = if options.fortran { Order::Fortran } else { Order::C };
    let x_path = dir.join(IMAGES_FILE);
    let io = |e: std::io::Error| Error::io(&x_path, e);
    let out = files::create(&x_path)?;
    macro_rules! write_as {
        ($t:ty, $ts:expr) => {{
            let ts: TypeStr = $ts.parse().map_err(|e| Error::config("dtype", $ts, format!("{e}")))?;
            let mut w = npyz::WriteOptions::<$t>::new()
                .dtype(DType::Plain(ts))
                .shape(&shape)
                .order(order)
                .writer(out)
                .begin_nd()
                .map_err(io)?;
            w.extend(values.map(|v| v as $t)).map_err(io)?;
            w.finish().map_err(io)?;
        }};
    }
    match options.images {
        ImageDtype::F32 => write_as!(f32, "<f4"),
        ImageDtype::F32BigEndian => write_as!(f32, ">f4"),
        ImageDtype::F64 => write_as!(f64, "<f8"),
        ImageDtype::U8 => write_as!(u8, "|u1"),
        ImageDtype::U16 => write_as!(u16, "<u2"),
        ImageDtype::I16 => write_as!(i16, "<i2"),
    }

    let y_path = dir.join(LABELS_FILE);
    let io = |e: std::io::Error| Error::io(&y_path, e);
    let out = files::create(&y_path)?;
    if options.labels_i64 {
        let mut w = npyz::WriteOptions::<i64>::new()
            .default_dtype()
            .shape(&[n as u64])
            .writer(out)
            .begin_nd()
            .map_err(io)?;
        w.extend(set.labels.iter().map(|&l| l as i64)).map_err(io)?;
        w.finish().map_err(io)
    } else {
        let mut w = npyz::WriteOptions::<u8>::new()
            .default_dtype()
            .shape(&[n as u64])
            .writer(out)
            .begin_nd()
            .map_err(io)?;
        w.extend(set.labels.iter().map(|&l| l as u8)).map_err(io)?;
        w.finish().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a C-order npy file of `data` with `shape`.
    fn npy<T: npyz::AutoSerialize>(path: impl AsRef<Path>, shape: &[u64], data: Vec<T>) -> std::io::Result<()> {
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(shape)
            .writer(std::io::BufWriter::new(std::fs::File::create(path)?))
            .begin_nd()?;
        w.extend(data)?;
        w.finish()
    }

    /// `n` items with integral values in 0..=250 that encode their position.
    fn set(n: usize, u8_pixels: bool) -> ImageSet {
        let values = (0..n * ITEM_LEN).map(|i| ((i * 7 + i / ITEM_LEN) % 251) as u8);
        ImageSet {
            shape: [BANDS, SIDE, SIDE],
            pixels: if u8_pixels {
                Pixels::U8(values.collect())
            } else {
                Pixels::F32(values.map(|v| v as f32).collect())
            },
            labels: (0..n).map(|i| (i * 5 % N_CLASSES) as u16).collect(),
        }
    }

    /// Train and test, put back in file order, equal `all`.
    fn assert_split_of(data: &Dataset, all: &ImageSet, seed: u64) {
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let half = all.len() / 2;
        assert_eq!(data.train, all.subset(&order[..half]));
        assert_eq!(data.test, all.subset(&order[half..]));
    }

    #[test]
    fn fixture_round_trips_in_every_dtype_and_order() {
        for images in [
            ImageDtype::F32,
            ImageDtype::F32BigEndian,
            ImageDtype::F64,
            ImageDtype::U8,
            ImageDtype::U16,
            ImageDtype::I16,
        ] {
            for fortran in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let all = set(5, images == ImageDtype::U8);
                let options = FixtureOptions {
                    images,
                    fortran,
                    labels_i64: !fortran,
                };
                write_fixture(dir.path(), &all, options).unwrap();
                let data = load(dir.path(), 3).unwrap();
                assert_split_of(&data, &all, 3);
                assert_eq!(data.train.len(), 2);
                assert_eq!(data.test.len(), 3);
            }
        }
    }

    #[test]
    fn layout_is_nhwc_to_nchw() {
        // A hand-written C-order file: value at (n, h, w, c) = h + 2w + 3c + 5n.
        let dir = tempfile::tempdir().unwrap();
        let n = 2;
        let values: Vec<f32> = (0..n * ITEM_LEN)
            .map(|i| {
                let (item, h, w, c) = (i / ITEM_LEN, (i / (SIDE * BANDS)) % SIDE, (i / BANDS) % SIDE, i % BANDS);
                (h + 2 * w + 3 * c + 5 * item) as f32
            })
            .collect();
        npy(dir.path().join(IMAGES_FILE), &[n as u64, 35, 35, 36], values).unwrap();
        npy(dir.path().join(LABELS_FILE), &[n as u64], vec![1i64, 2]).unwrap();
        let data = load(dir.path(), 0).unwrap();
        for part in [&data.train, &data.test] {
            let Pixels::F32(p) = &part.pixels else { panic!() };
            let item = if part.labels[0] == 1 { 0 } else { 1 };
            for (c, h, w) in [(0, 0, 1), (35, 34, 0), (7, 3, 30)] {
                assert_eq!(p[c * 1225 + h * 35 + w], (h + 2 * w + 3 * c + 5 * item) as f32);
            }
        }
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let all = set(9, true);
        write_fixture(
            dir.path(),
            &all,
            FixtureOptions {
                images: ImageDtype::U8,
                ..Default::default()
            },
        )
        .unwrap();
        let a = load(dir.path(), SPLIT_SEED).unwrap();
        let b = load(dir.path(), SPLIT_SEED).unwrap();
        assert_eq!(
            (a.train.labels.clone(), a.test.labels.clone()),
            (b.train.labels, b.test.labels)
        );
        assert_eq!((a.train.len(), a.test.len()), (4, 5));
        assert_split_of(&a, &all, SPLIT_SEED);
        assert!(matches!(a.train.pixels, Pixels::U8(_)));
    }

    #[test]
    fn stats_come_from_the_training_half() {
        let dir = tempfile::tempdir().unwrap();
        let all = set(6, false);
        write_fixture(dir.path(), &all, FixtureOptions::default()).unwrap();
        let data = load(dir.path(), 1).unwrap();
        let (mean, std) = band_stats(&data.train);
        assert_eq!((data.info.mean.clone(), data.info.std.clone()), (mean.clone(), std));
        assert_ne!(mean, band_stats(&all).0);
        // Normalised training data has mean 0 and std 1 in every band.
        let z = data.train.normalised(&data.info);
        for c in 0..BANDS {
            let band: Vec<f64> = (0..data.train.len())
                .flat_map(|i| {
                    z[i * ITEM_LEN + c * 1225..i * ITEM_LEN + (c + 1) * 1225]
                        .iter()
                        .map(|&v| v as f64)
                })
                .collect();
            let m = band.iter().sum::<f64>() / band.len() as f64;
            let s = (band.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / band.len() as f64).sqrt();
            assert!(m.abs() < 1e-4 && (s - 1.0).abs() < 1e-4, "band {c}: {m} {s}");
        }
    }

    #[test]
    fn stats_of_u8_are_in_scaled_units_and_constant_bands_get_std_1() {
        let mut s = set(2, true);
        if let Pixels::U8(p) = &mut s.pixels {
            p[..1225].fill(51);
            p[ITEM_LEN..ITEM_LEN + 1225].fill(51);
        }
        let (mean, std) = band_stats(&s);
        assert!((mean[0] - 0.2).abs() < 1e-6 && std[0] == 1.0);
        assert!(mean[1] < 1.0 && std[1] < 1.0);
    }

    #[test]
    fn missing_file_says_which_where_and_source() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(2, true), FixtureOptions::default()).unwrap();
        std::fs::remove_file(dir.path().join(LABELS_FILE)).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(
            msg.contains(&dir.path().join(LABELS_FILE).display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("y_train.npy is missing"), "{msg}");
        assert!(msg.contains("github.com/StefOe/selection-masks"), "{msg}");
    }

    #[test]
    fn truncated_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(2, false), FixtureOptions::default()).unwrap();
        let path = dir.path().join(IMAGES_FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(
            msg.contains("invalid npy file: data ends after 88197 of 88200 values"),
            "{msg}"
        );
        std::fs::write(&path, &bytes[..20]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("invalid npy file: cannot read the npy header"), "{msg}");
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(1, false), FixtureOptions::default()).unwrap();
        npy(dir.path().join(IMAGES_FILE), &[1, 36, 35, 35], vec![0f32; ITEM_LEN]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(
            msg.contains("array has shape [1, 36, 35, 35], expected [N, 35, 35, 36]"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_dtype_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(1, false), FixtureOptions::default()).unwrap();
        npy(dir.path().join(IMAGES_FILE), &[1, 35, 35, 36], vec![0i32; ITEM_LEN]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("dtype '<i4' is not supported"), "{msg}");
        write_fixture(dir.path(), &set(1, false), FixtureOptions::default()).unwrap();
        npy(dir.path().join(LABELS_FILE), &[1], vec![1f32]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("label dtype '<f4' is not an integer type"), "{msg}");
    }

    #[test]
    fn count_mismatch_and_bad_labels_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path(), &set(2, false), FixtureOptions::default()).unwrap();
        npy(dir.path().join(LABELS_FILE), &[3], vec![1i64, 2, 3]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.contains("X_train.npy holds 2 images but "), "{msg}");
        assert!(msg.contains("y_train.npy holds 3 labels"), "{msg}");
        npy(dir.path().join(LABELS_FILE), &[2], vec![1i64, 13]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(
            msg.ends_with("y_train.npy: label 13 at item 1 is outside 0..13"),
            "{msg}"
        );
        npy(dir.path().join(LABELS_FILE), &[2], vec![-1i64, 1]).unwrap();
        let msg = load(dir.path(), 0).unwrap_err().to_string();
        assert!(msg.ends_with("label -1 at item 0 is not a class index"), "{msg}");
    }
}
