//! Storage-aligned data: a dataset split as a Zarr v3 array whose chunks
//! follow the mask's cells, so a server reads only the selected chunks.
//!
//! Layout of a store directory (readable by zarr-python ≥ 3):
//!
//! ```text
//! <store>/zarr.json                 group; attributes: dataset, granularity, selmask version
//! <store>/<split>/images/zarr.json  uint8 or float32 [N, C, H, W]
//! <store>/<split>/labels/zarr.json  uint16 [N]
//! ```
//!
//! Image chunks are `[items_per_chunk, cc, ch, cw]`, with `cc`, `ch`, `cw`
//! the greatest common divisor of the cell extents along each axis: every
//! mask cell is then a union of whole chunks (exactly one chunk on even
//! grids), even on uneven grids such as 12 cells on 32 pixels. Chunks are
//! stored raw (the `bytes` codec) or zstd-compressed; chunks holding only
//! zeros are not written at all (Zarr's fill value), so reading them costs
//! no I/O.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zarrs::array::{Array, ArrayBuilder, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::{Group, GroupBuilder};

use crate::dataset::{ImageSet, Pixels};
use crate::error::{Error, Result};
use crate::artifact::StoredDtype;
use crate::granularity::{CellLayout, Granularity};

/// What the store's root group records about the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// Version of this layout ([`STORE_FORMAT_VERSION`]); stores written
    /// before versions were recorded (1) skipped all-zero chunks, so a
    /// deleted chunk could not be told from one never written.
    #[serde(default = "first_store_version")]
    pub format_version: u32,
    /// The dataset's name (as the server registers it).
    pub dataset: String,
    /// One item's shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Stored dtype.
    pub dtype: StoredDtype,
    /// The granularity the chunks were aligned to.
    pub granularity: Granularity,
    /// Chunk shape of the image arrays `[items, c, h, w]`.
    pub chunk: [usize; 4],
    /// zstd level of the chunks, if compressed.
    pub zstd_level: Option<i32>,
    /// The splits stored.
    pub splits: Vec<String>,
    /// The writing program.
    pub created_by: String,
}

/// Version of the store layout this build writes and reads: every chunk of
/// the grid is written, all-zero ones too, so a chunk that is missing was
/// lost (deleted, a failed copy) and is an error, never served as zeros.
pub const STORE_FORMAT_VERSION: u32 = 2;

fn first_store_version() -> u32 {
    1
}

/// Whether `dir` is a store selmask wrote: its root `zarr.json` carries
/// selmask's attributes and every entry is that file or a stored split.
/// Only such a directory may be replaced by `ingest --overwrite`.
pub fn store_ownership(dir: &Path) -> std::result::Result<(), String> {
    let root = dir.join("zarr.json");
    let len = std::fs::metadata(&root).map_err(|e| format!("it has no readable zarr.json ({e})"))?.len();
    if len > MAX_METADATA_BYTES {
        return Err(format!("its zarr.json has {len} bytes, not a selmask store's"));
    }
    let info = read_store_info(dir).map_err(|e| e.to_string())?;
    crate::util::only_entries(dir, &|name| name == "zarr.json" || info.splits.iter().any(|s| s == name))
}

/// The ownership check of stores, for `--overwrite`.
const STORE_OWNER: crate::util::Ownership<'static> =
    crate::util::Ownership { what: "zarr store", check: &store_ownership };

/// Largest `zarr.json` read (selmask's are under 2 kB).
const MAX_METADATA_BYTES: u64 = 1 << 20;

fn zerr(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid(path, "zarr store", e.to_string())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The gcd of the lengths of the runs of equal values in `cells`.
fn run_gcd(cells: impl Iterator<Item = usize>) -> usize {
    let (mut g, mut run, mut last) = (0, 0, None);
    for c in cells {
        if Some(c) == last {
            run += 1;
        } else {
            if run > 0 {
                g = gcd(g, run);
            }
            run = 1;
            last = Some(c);
        }
    }
    gcd(g, run).max(1)
}

/// The spatial chunk `[cc, ch, cw]` aligned to `layout`'s cells.
pub fn cell_aligned_chunk(layout: &CellLayout) -> [usize; 3] {
    let [c, h, w] = layout.input;
    let [_, mh, mw] = layout.mask;
    let (plane, cells_plane) = (h * w, mh * mw);
    let cc = run_gcd((0..c).map(|k| layout.cell_of_value[k * plane] / cells_plane.max(1)));
    let ch = run_gcd((0..h).map(|y| (layout.cell_of_value[y * w] / mw.max(1)) % mh.max(1)));
    let cw = run_gcd((0..w).map(|x| layout.cell_of_value[x] % mw.max(1)));
    [cc, ch, cw]
}

/// Settings of [`ingest`].
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Items per chunk along the first axis (default 256).
    pub items_per_chunk: usize,
    /// zstd level, or `None` for raw chunks.
    pub zstd_level: Option<i32>,
    /// Replace an existing store.
    pub overwrite: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { items_per_chunk: 256, zstd_level: None, overwrite: false }
    }
}

/// What [`ingest`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    /// The store's description.
    pub info: StoreInfo,
    /// Chunks written (every chunk of the grid, all-zero ones too).
    pub chunks_written: usize,
    /// Chunks of the grid in all.
    pub chunks_total: usize,
}

/// Writes `splits` of dataset `dataset` into a new Zarr v3 store at `out`,
/// chunked along `granularity`'s cells. Written into a temporary sibling
/// directory and renamed, so a failed ingest leaves no half store.
pub fn ingest(
    out: &Path,
    dataset: &str,
    splits: &[(&str, &ImageSet)],
    granularity: Granularity,
    config: &IngestConfig,
) -> Result<IngestReport> {
    let first = splits.first().ok_or_else(|| Error::spec("splits", "nothing to ingest"))?.1;
    let shape = first.shape;
    let dtype = StoredDtype::of(&first.pixels);
    if let Some((name, _)) = splits.iter().find(|(_, s)| s.shape != shape || StoredDtype::of(&s.pixels) != dtype) {
        return Err(Error::spec("splits", format!("split '{name}' differs in shape or dtype from the first")));
    }
    if let Some((name, _)) = splits.iter().find(|(n, _)| !crate::util::is_plain_name(n)) {
        return Err(Error::spec("splits", format!("'{name}' is not a plain name")));
    }
    if config.items_per_chunk == 0 {
        return Err(Error::spec("items_per_chunk", "must be at least 1"));
    }
    let layout = granularity.layout(shape)?;
    let [cc, ch, cw] = cell_aligned_chunk(&layout);
    let chunk = [config.items_per_chunk, cc, ch, cw];
    let info = StoreInfo {
        format_version: STORE_FORMAT_VERSION,
        dataset: dataset.to_string(),
        shape,
        dtype,
        granularity,
        chunk,
        zstd_level: config.zstd_level,
        splits: splits.iter().map(|(n, _)| n.to_string()).collect(),
        created_by: format!("selmask {}", env!("CARGO_PKG_VERSION")),
    };
    check_geometry(&info).map_err(|reason| Error::spec("chunk", reason))?;
    let mut counts = (0, 0);
    crate::util::replace_dir_atomically(out, config.overwrite, &STORE_OWNER, |tmp| {
        counts = write_store(tmp, &info, splits)?;
        Ok(())
    })?;
    let (chunks_written, chunks_total) = counts;
    Ok(IngestReport { info, chunks_written, chunks_total })
}

fn write_store(dir: &Path, info: &StoreInfo, splits: &[(&str, &ImageSet)]) -> Result<(usize, usize)> {
    let store = Arc::new(FilesystemStore::new(dir).map_err(|e| zerr(dir, e))?);
    let mut root = GroupBuilder::new().build(store.clone(), "/").map_err(|e| zerr(dir, e))?;
    let attrs = serde_json::to_value(info).map_err(|e| zerr(dir, e))?;
    root.attributes_mut().insert("selmask".into(), attrs);
    root.store_metadata().map_err(|e| zerr(dir, e))?;
    let [c, h, w] = info.shape;
    let [ipc, cc, ch, cw] = info.chunk;
    let (mut written, mut total) = (0, 0);
    // All-zero chunks are written too (zarrs would skip them), so that a
    // missing chunk always means lost data (see STORE_FORMAT_VERSION).
    let every_chunk = zarrs::array::CodecOptions::default().with_store_empty_chunks(true);
    for (name, set) in splits {
        let group = GroupBuilder::new().build(store.clone(), &format!("/{name}")).map_err(|e| zerr(dir, e))?;
        group.store_metadata().map_err(|e| zerr(dir, e))?;
        let n = set.len();
        let dt = match info.dtype {
            StoredDtype::U8 => data_type::uint8(),
            StoredDtype::F32 => data_type::float32(),
        };
        let fill: zarrs::array::FillValue = match info.dtype {
            StoredDtype::U8 => 0u8.into(),
            StoredDtype::F32 => 0f32.into(),
        };
        let mut builder = ArrayBuilder::new(
            vec![n as u64, c as u64, h as u64, w as u64],
            vec![ipc as u64, cc as u64, ch as u64, cw as u64],
            dt,
            fill,
        );
        builder.dimension_names(["item", "channel", "y", "x"].into());
        if let Some(level) = info.zstd_level {
            builder.bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(level, false))]);
        }
        let images = builder.build(store.clone(), &format!("/{name}/images")).map_err(|e| zerr(dir, e))?;
        images.store_metadata().map_err(|e| zerr(dir, e))?;
        let grid = [n.div_ceil(ipc), c / cc, h / ch, w / cw];
        for i0 in 0..grid[0] {
            for k in 0..grid[1] {
                for y in 0..grid[2] {
                    for x in 0..grid[3] {
                        total += 1;
                        let idx = [i0 as u64, k as u64, y as u64, x as u64];
                        match &set.pixels {
                            Pixels::U8(v) => {
                                let block = gather(v, info.shape, info.chunk, [i0, k, y, x], n, 0u8);
                                images.store_chunk_opt(&idx, block, &every_chunk).map_err(|e| zerr(dir, e))?;
                            }
                            Pixels::F32(v) => {
                                let block = gather(v, info.shape, info.chunk, [i0, k, y, x], n, 0f32);
                                images.store_chunk_opt(&idx, block, &every_chunk).map_err(|e| zerr(dir, e))?;
                            }
                        };
                        written += 1;
                    }
                }
            }
        }
        let labels = ArrayBuilder::new(vec![n as u64], vec![n.max(1) as u64], data_type::uint16(), 0u16)
            .build(store.clone(), &format!("/{name}/labels"))
            .map_err(|e| zerr(dir, e))?;
        labels.store_metadata().map_err(|e| zerr(dir, e))?;
        if n > 0 {
            labels.store_chunk_opt(&[0], set.labels.clone(), &every_chunk).map_err(|e| zerr(dir, e))?;
        }
    }
    Ok((written, total))
}

/// The values of chunk `[i0, k, y, x]`, row-major `[ipc, cc, ch, cw]`, with
/// `fill` past the last item.
fn gather<T: Copy>(values: &[T], [c, h, w]: [usize; 3], [ipc, cc, ch, cw]: [usize; 4], [i0, k, y, x]: [usize; 4], n: usize, fill: T) -> Vec<T> {
    let mut out = Vec::with_capacity(ipc * cc * ch * cw);
    for i in i0 * ipc..(i0 + 1) * ipc {
        for kk in k * cc..(k + 1) * cc {
            for yy in y * ch..(y + 1) * ch {
                if i < n {
                    let base = ((i * c + kk) * h + yy) * w + x * cw;
                    out.extend_from_slice(&values[base..base + cw]);
                } else {
                    out.extend(std::iter::repeat_n(fill, cw));
                }
            }
        }
    }
    out
}

/// Most items one stored split may declare (2^32: item indices are u32 on
/// the wire).
const MAX_ITEMS: u64 = 1 << 32;

/// Most values of one item a store may declare (a 4-band 4096 × 4096 image
/// is 2^26; anything far beyond is a damaged or hostile zarr.json).
const MAX_ITEM_VALUES: usize = 1 << 30;

/// Checks the store's declared geometry with checked arithmetic before
/// anything is sized from it: positive dimensions, chunks that tile the
/// item exactly, and sizes that fit in memory.
fn check_geometry(info: &StoreInfo) -> std::result::Result<(), String> {
    let [c, h, w] = info.shape;
    let [ipc, cc, ch, cw] = info.chunk;
    let values = c.checked_mul(h).and_then(|v| v.checked_mul(w));
    match values {
        Some(v) if v > 0 && v <= MAX_ITEM_VALUES => {}
        _ => return Err(format!("item shape {:?} must be positive with at most {MAX_ITEM_VALUES} values", info.shape)),
    }
    if ipc == 0 || cc == 0 || ch == 0 || cw == 0 || c % cc != 0 || h % ch != 0 || w % cw != 0 {
        return Err(format!("chunk {:?} does not tile items of {:?}", info.chunk, info.shape));
    }
    let chunk_values = [ipc, cc, ch, cw].iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    match chunk_values.and_then(|v| v.checked_mul(info.dtype.value_bytes())) {
        Some(b) if b <= 1 << 31 => Ok(()),
        _ => Err(format!("chunk {:?} is larger than 2 GiB", info.chunk)),
    }
}

/// One split of a store, opened for serving.
pub struct StoreSplit {
    dir: PathBuf,
    split: String,
    info: StoreInfo,
    images: Array<FilesystemStore>,
    labels: Vec<u16>,
}

impl std::fmt::Debug for StoreSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSplit").field("dir", &self.dir).field("info", &self.info).finish()
    }
}

/// Reads the root group's description of the store at `dir`.
pub fn read_store_info(dir: &Path) -> Result<StoreInfo> {
    let store = Arc::new(FilesystemStore::new(dir).map_err(|e| zerr(dir, e))?);
    let root = Group::open(store, "/").map_err(|e| zerr(dir, e))?;
    let attrs = root
        .attributes()
        .get("selmask")
        .ok_or_else(|| Error::invalid(dir.join("zarr.json"), "attributes.selmask", "missing: not a selmask store"))?;
    serde_json::from_value(attrs.clone()).map_err(|e| Error::invalid(dir.join("zarr.json"), "attributes.selmask", e.to_string()))
}

impl StoreSplit {
    /// Opens split `split` of the store at `dir` (labels are read into memory).
    pub fn open(dir: &Path, split: &str) -> Result<Self> {
        let info = read_store_info(dir)?;
        let meta = dir.join("zarr.json");
        if info.format_version < STORE_FORMAT_VERSION {
            return Err(Error::invalid(
                meta,
                "attributes.selmask.format_version",
                format!(
                    "{}: this store skipped all-zero chunks, so lost chunks cannot be detected; re-ingest it \
                     (selmask ingest --overwrite) to get version {STORE_FORMAT_VERSION}",
                    info.format_version
                ),
            ));
        }
        if info.format_version > STORE_FORMAT_VERSION {
            return Err(Error::invalid(
                meta,
                "attributes.selmask.format_version",
                format!("{} is newer than this build reads ({STORE_FORMAT_VERSION})", info.format_version),
            ));
        }
        check_geometry(&info).map_err(|reason| Error::invalid(dir.join("zarr.json"), "attributes.selmask", reason))?;
        if !info.splits.iter().any(|s| s == split) {
            return Err(Error::invalid(dir, "split", format!("'{split}' is not stored; splits: {}", info.splits.join(", "))));
        }
        let store = Arc::new(FilesystemStore::new(dir).map_err(|e| zerr(dir, e))?);
        let images = Array::open(store.clone(), &format!("/{split}/images")).map_err(|e| zerr(dir, e))?;
        let labels_array = Array::open(store, &format!("/{split}/labels")).map_err(|e| zerr(dir, e))?;
        let n_items = images.shape().first().copied().unwrap_or(0);
        if labels_array.shape() != [n_items] || n_items > MAX_ITEMS {
            return Err(Error::invalid(
                dir,
                split,
                format!("labels of shape {:?} for {n_items} items (at most {MAX_ITEMS})", labels_array.shape()),
            ));
        }
        let n = n_items as usize;
        let labels: Vec<u16> = if n == 0 {
            Vec::new()
        } else if labels_array.retrieve_encoded_chunk(&[0]).map_err(|e| zerr(dir, e))?.is_none() {
            return Err(Error::invalid(dir, format!("{split}/labels chunk [0]"), "missing: re-ingest the store"));
        } else {
            labels_array.retrieve_chunk::<Vec<u16>>(&[0]).map_err(|e| zerr(dir, e))?
        };
        let expect_chunk: Vec<u64> = info.chunk.iter().map(|&v| v as u64).collect();
        let [c, h, w] = info.shape;
        if images.shape() != [n as u64, c as u64, h as u64, w as u64]
            || images.chunk_shape(&[0, 0, 0, 0]).map(|s| s.iter().map(|v| v.get()).collect::<Vec<_>>()).ok() != Some(expect_chunk)
            || labels.len() != n
        {
            return Err(Error::invalid(dir, split, "array shapes or chunks disagree with the store's attributes"));
        }
        Ok(StoreSplit { dir: dir.to_path_buf(), split: split.to_string(), info, images, labels })
    }

    /// The store's description.
    pub fn info(&self) -> &StoreInfo {
        &self.info
    }

    /// Items in the split.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no items.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels, in item order.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The items `indices` as a dense set (in that order), reading only the
    /// chunks that hold a value of `selected` (flat `[C, H, W]` indices;
    /// `None` = whole items); values outside those chunks are 0. Returns the
    /// set and the bytes read from storage (encoded chunk sizes).
    pub fn read_items(&self, indices: &[u32], selected: Option<&[u32]>) -> Result<(ImageSet, u64)> {
        let [c, h, w] = self.info.shape;
        let [ipc, cc, ch, cw] = self.info.chunk;
        let n_values = c * h * w;
        let grid = [c / cc, h / ch, w / cw];
        // Spatial chunks to read, as flat ids `(k * gy + y) * gx + x`.
        let mut wanted = vec![selected.is_none(); grid.iter().product()];
        for &v in selected.unwrap_or(&[]) {
            let v = v as usize;
            let (k, y, x) = (v / (h * w), v / w % h, v % w);
            wanted[((k / cc) * grid[1] + y / ch) * grid[2] + x / cw] = true;
        }
        let mut pixels = match self.info.dtype {
            StoredDtype::U8 => Pixels::U8(vec![0; indices.len() * n_values]),
            StoredDtype::F32 => Pixels::F32(vec![0.0; indices.len() * n_values]),
        };
        let mut bytes_read = 0u64;
        // Items grouped by their item-chunk, so each chunk is read once.
        let mut order: Vec<usize> = (0..indices.len()).collect();
        order.sort_by_key(|&k| indices[k]);
        let mut start = 0;
        while start < order.len() {
            let row = indices[order[start]] as usize / ipc;
            let end = start + order[start..].iter().take_while(|&&k| indices[k] as usize / ipc == row).count();
            for (s, _) in wanted.iter().enumerate().filter(|(_, w)| **w) {
                let (k, y, x) = (s / (grid[1] * grid[2]), s / grid[2] % grid[1], s % grid[2]);
                let key = [row as u64, k as u64, y as u64, x as u64];
                let Some(encoded) = self.images.retrieve_encoded_chunk(&key).map_err(|e| zerr(&self.dir, e))? else {
                    // Every chunk was written at ingest: this one was lost.
                    return Err(Error::invalid(
                        &self.dir,
                        format!("{}/images chunk {key:?}", self.split),
                        "missing: the store was written with every chunk, so this one was deleted or never copied; \
                         re-ingest the store",
                    ));
                };
                bytes_read += encoded.len() as u64;
                let raw = match self.info.zstd_level {
                    Some(_) => zstd::stream::decode_all(&encoded[..]).map_err(|e| zerr(&self.dir, e))?,
                    None => encoded,
                };
                let chunk_values = ipc * cc * ch * cw;
                let value_bytes = self.info.dtype.value_bytes();
                if raw.len() != chunk_values * value_bytes {
                    return Err(zerr(&self.dir, format!("chunk {key:?} holds {} bytes, expected {}", raw.len(), chunk_values * value_bytes)));
                }
                for &k_out in &order[start..end] {
                    let i = indices[k_out] as usize - row * ipc;
                    for kk in 0..cc {
                        for yy in 0..ch {
                            let src = ((i * cc + kk) * ch + yy) * cw;
                            let dst = k_out * n_values + ((k * cc + kk) * h + y * ch + yy) * w + x * cw;
                            match &mut pixels {
                                Pixels::U8(p) => p[dst..dst + cw].copy_from_slice(&raw[src..src + cw]),
                                Pixels::F32(p) => {
                                    for (o, b) in p[dst..dst + cw].iter_mut().zip(raw[src * 4..(src + cw) * 4].chunks_exact(4)) {
                                        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            start = end;
        }
        let labels = indices.iter().map(|&i| self.labels[i as usize]).collect();
        Ok((ImageSet { shape: self.info.shape, pixels, labels }, bytes_read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, shape: [usize; 3]) -> ImageSet {
        let len = n * shape.iter().product::<usize>();
        ImageSet { shape, pixels: Pixels::U8((0..len).map(|i| (i * 7 % 251) as u8 + 1).collect()), labels: (0..n as u16).collect() }
    }

    #[test]
    fn chunks_follow_the_cells_even_on_uneven_grids() {
        let pixel = Granularity::Pixel.layout([1, 28, 28]).unwrap();
        assert_eq!(cell_aligned_chunk(&pixel), [1, 1, 1]);
        let block: Granularity = "block:4".parse().unwrap();
        assert_eq!(cell_aligned_chunk(&block.layout([3, 32, 32]).unwrap()), [3, 4, 4]);
        // 12 cells on 32 pixels: runs of 2 and 3 pixels, so 1-pixel chunks.
        let grid: Granularity = "grid:12".parse().unwrap();
        assert_eq!(cell_aligned_chunk(&grid.layout([3, 32, 32]).unwrap())[1..], [1, 1]);
        let sub: Granularity = "subgrid:4".parse().unwrap();
        assert_eq!(cell_aligned_chunk(&sub.layout([3, 32, 32]).unwrap()), [1, 8, 8]);
    }

    #[test]
    fn reads_only_the_selected_chunks_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let data = set(10, [3, 8, 8]);
        let g: Granularity = "subgrid:2".parse().unwrap(); // cells of 1 channel x 4 x 4
        for zstd in [None, Some(3)] {
            let out = dir.path().join(format!("s{zstd:?}"));
            let cfg = IngestConfig { items_per_chunk: 4, zstd_level: zstd, overwrite: false };
            let report = ingest(&out, "toy", &[("test", &data)], g, &cfg).unwrap();
            assert_eq!(report.info.chunk, [4, 1, 4, 4]);
            assert_eq!(report.chunks_total, 3 * 12);
            let split = StoreSplit::open(&out, "test").unwrap();
            assert_eq!(split.labels(), &data.labels[..]);
            // Whole items come back exactly.
            let (all, full_bytes) = split.read_items(&[9, 0, 5], None).unwrap();
            for (k, &i) in [9usize, 0, 5].iter().enumerate() {
                for v in 0..192 {
                    assert_eq!(all.pixels.get(k * 192 + v), data.pixels.get(i * 192 + v));
                }
            }
            // One cell (channel 1, top-left 4x4): one chunk per item-chunk row.
            let selected: Vec<u32> = (0..4).flat_map(|y| (0..4).map(move |x| 64 + y * 8 + x)).collect();
            let (part, bytes) = split.read_items(&[9, 0, 5], Some(&selected)).unwrap();
            assert!(bytes * 10 < full_bytes, "{bytes} of {full_bytes}");
            if zstd.is_none() {
                assert_eq!(bytes, 3 * 4 * 16); // rows 0, 1 and 2, one 4x1x4x4 chunk each
            }
            for (k, &i) in [9usize, 0, 5].iter().enumerate() {
                for &v in &selected {
                    assert_eq!(part.pixels.get(k * 192 + v as usize), data.pixels.get(i * 192 + v as usize));
                }
            }
            assert_eq!(part.pixels.get(0), 0.0, "unselected chunks are not read");
        }
        let err = ingest(&dir.path().join("sNone"), "toy", &[("test", &data)], g, &IngestConfig::default()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = StoreSplit::open(&dir.path().join("sNone"), "train").unwrap_err();
        assert!(err.to_string().contains("'train' is not stored"), "{err}");
        let err = read_store_info(dir.path()).unwrap_err();
        assert!(err.to_string().contains("zarr"), "{err}");
    }
}
