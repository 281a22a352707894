//! The wire format: how the server sends the selected values of a batch of
//! items, and how the client turns them back into dense inputs.
//!
//! Byte layout (all integers little-endian; `docs/wire-format.md` is the
//! reference):
//!
//! ```text
//! header, 20 bytes:
//!   0  magic "SLMX"            4 bytes
//!   4  version = 2             u8
//!   5  dtype (1 = u8, 2 = f32) u8
//!   6  flags                   u16   bit 0: dynamic (per-item mask bits follow)
//!   8  item count              u32
//!  12  values per item         u32   static: selected values; dynamic: C·H·W
//!  16  cells per item          u32   dynamic: mask cells; static: 0
//! per item, in request order:
//!      mask bits               ceil(cells/8) bytes, dynamic only, LSB-first
//!      values                  in the stored dtype, in mask order
//! ```
//!
//! "Mask order" is ascending row-major `[C, H, W]` value index: the order of
//! `selected.npy`, and for dynamic masks the order of the values whose cell
//! bit is set. A static u8 item therefore costs exactly `n_selected` bytes,
//! and a response `20 + items · n_selected`: the header is the only framing.
//!
//! Items carry neither their index nor their label (version 1 spent 6 bytes
//! per item on them, 15 % of a Q = 0.05 Fashion-MNIST item). The client
//! knows which indices it asked for, so the decoders take them and check the
//! payload's item count against them; labels are evaluation data, not model
//! input, and come from a separate endpoint (`docs/wire-format.md`).
//!
//! The static encoder is the server's hot loop: a [`StaticPlan`] validates
//! the selection once and precomputes contiguous runs, so packing one item is
//! a bounds-checked gather (or a few `memcpy`s for blocky masks) into a
//! buffer allocated once per response. Every decoder checks every length
//! before it reads or allocates and returns an error on malformed input; none
//! of them panics (property-tested with random bytes).

use crate::dataset::{ImageSet, Pixels};
use crate::artifact::format::{Artifact, ArtifactMask, Normalisation, StoredDtype};
use crate::granularity::CellLayout;
use crate::error::{Error, Result};

/// First four bytes of every payload.
pub const MAGIC: [u8; 4] = *b"SLMX";
/// Wire format version this code speaks (2: no per-item index or label).
pub const WIRE_VERSION: u8 = 2;
/// Bytes of the fixed header, once per response: the only framing of a
/// static payload.
pub const HEADER_BYTES: usize = 20;
/// Header flag: items carry their cell mask bits (dynamic masks).
pub const FLAG_DYNAMIC: u16 = 1;
/// The media type of payloads.
pub const CONTENT_TYPE: &str = "application/vnd.selmask.items";

/// Mean run length (values) from which runs are copied instead of gathered
/// value by value. Measured with `bench::pack_throughput` (u8, one core):
/// the gather loop moves ~2.6 GB/s of payload whatever the mask; copying
/// runs is ~7x slower on scattered masks (mean run 1-2) and ~4x faster on
/// 12x12-grid masks (runs of 32+). 8 is between; not finely tuned.
const RUN_COPY_MIN_MEAN: usize = 8;

fn dtype_code(d: StoredDtype) -> u8 {
    match d {
        StoredDtype::U8 => 1,
        StoredDtype::F32 => 2,
    }
}

/// The payload header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Dtype of the values.
    pub dtype: StoredDtype,
    /// Whether items carry mask bits.
    pub dynamic: bool,
    /// Number of items.
    pub item_count: u32,
    /// Static: selected values per item; dynamic: values of a full item.
    pub values_per_item: u32,
    /// Dynamic: mask cells per item; static: 0.
    pub cells_per_item: u32,
}

impl Header {
    /// Writes the header into the first [`HEADER_BYTES`] of `out`.
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = WIRE_VERSION;
        out[5] = dtype_code(self.dtype);
        let flags = if self.dynamic { FLAG_DYNAMIC } else { 0 };
        out[6..8].copy_from_slice(&flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.item_count.to_le_bytes());
        out[12..16].copy_from_slice(&self.values_per_item.to_le_bytes());
        out[16..20].copy_from_slice(&self.cells_per_item.to_le_bytes());
    }

    /// Parses and checks the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < HEADER_BYTES {
            return Err(Error::payload(format!(
                "{} bytes, shorter than the {HEADER_BYTES}-byte header",
                bytes.len()
            )));
        }
        if bytes[0..4] != MAGIC {
            return Err(Error::payload(format!(
                "magic is {:02x?}, expected \"SLMX\"",
                &bytes[0..4]
            )));
        }
        if bytes[4] != WIRE_VERSION {
            // Version 1 laid items out differently (index and label first):
            // decoding it as version 2 would shift every value.
            return Err(Error::payload(format!(
                "wire version {} not supported (this decoder speaks version {WIRE_VERSION} only)",
                bytes[4]
            )));
        }
        let dtype = match bytes[5] {
            1 => StoredDtype::U8,
            2 => StoredDtype::F32,
            d => return Err(Error::payload(format!("unknown dtype code {d}"))),
        };
        let flags = u16_at(bytes, 6);
        if flags & !FLAG_DYNAMIC != 0 {
            return Err(Error::payload(format!("unknown flags {flags:#06x}")));
        }
        Ok(Header {
            dtype,
            dynamic: flags & FLAG_DYNAMIC != 0,
            item_count: u32_at(bytes, 8),
            values_per_item: u32_at(bytes, 12),
            cells_per_item: u32_at(bytes, 16),
        })
    }
}

/// Callers check `at + 4 <= bytes.len()`.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Callers check `at + 2 <= bytes.len()`.
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Checks that a payload announcing `count` items answers a request for
/// `indices`. Runs before any allocation sized by `count`, so the caller's
/// own request bounds what a decoder allocates.
fn check_count(header: &Header, indices: &[u32]) -> Result<usize> {
    let count = header.item_count as usize;
    if count != indices.len() {
        return Err(Error::payload(format!(
            "{count} items in the payload, {} asked for",
            indices.len()
        )));
    }
    Ok(count)
}

/// A stored value type that can go on the wire.
pub trait WireValue: Copy + Default + Send + Sync + 'static {
    /// Its dtype.
    const DTYPE: StoredDtype;
    /// Bytes per value on the wire.
    const BYTES: usize;
    /// Writes the selected values of one item (`src`, all values) into
    /// `dst` (exactly `plan.n_selected() * BYTES` bytes), in mask order.
    fn gather(src: &[Self], plan: &StaticPlan, dst: &mut [u8]);
    /// Reads one value from exactly [`Self::BYTES`] bytes.
    fn read(src: &[u8]) -> Self;
    /// Appends one value's bytes.
    fn put(self, out: &mut Vec<u8>);
    /// Wraps dense values as [`Pixels`].
    fn into_pixels(values: Vec<Self>) -> Pixels;
}

impl WireValue for u8 {
    const DTYPE: StoredDtype = StoredDtype::U8;
    const BYTES: usize = 1;

    #[inline]
    fn gather(src: &[u8], plan: &StaticPlan, dst: &mut [u8]) {
        if plan.copy_runs {
            let mut o = 0;
            for r in &plan.runs {
                let (s, l) = (r.start as usize, r.len as usize);
                dst[o..o + l].copy_from_slice(&src[s..s + l]);
                o += l;
            }
        } else {
            // The tight loop: one load and one store per value. Indices were
            // checked against the item length when the plan was built, so the
            // bounds check never fails and is predicted away.
            for (d, &i) in dst.iter_mut().zip(&plan.selected) {
                *d = src[i as usize];
            }
        }
    }

    fn read(src: &[u8]) -> u8 {
        src[0]
    }

    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }

    fn into_pixels(values: Vec<u8>) -> Pixels {
        Pixels::U8(values)
    }
}

impl WireValue for f32 {
    const DTYPE: StoredDtype = StoredDtype::F32;
    const BYTES: usize = 4;

    #[inline]
    fn gather(src: &[f32], plan: &StaticPlan, dst: &mut [u8]) {
        if plan.copy_runs {
            let mut o = 0;
            for r in &plan.runs {
                let (s, l) = (r.start as usize, r.len as usize);
                for (d, v) in dst[o * 4..(o + l) * 4].chunks_exact_mut(4).zip(&src[s..s + l]) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
                o += l;
            }
        } else {
            for (d, &i) in dst.chunks_exact_mut(4).zip(&plan.selected) {
                d.copy_from_slice(&src[i as usize].to_le_bytes());
            }
        }
    }

    fn read(src: &[u8]) -> f32 {
        f32::from_le_bytes([src[0], src[1], src[2], src[3]])
    }

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn into_pixels(values: Vec<f32>) -> Pixels {
        Pixels::F32(values)
    }
}

/// A run of consecutive selected values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: u32,
    len: u32,
}

/// A validated static selection, ready to pack and unpack with.
///
/// Built once per artifact; checks that indices are strictly ascending and
/// inside the item, so the hot loops need no further checks that can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPlan {
    shape: [usize; 3],
    n_values: usize,
    selected: Vec<u32>,
    runs: Vec<Run>,
    copy_runs: bool,
}

impl StaticPlan {
    /// A plan sending `selected` (ascending, unique, `< C·H·W`) of items of
    /// `shape`.
    pub fn new(shape: [usize; 3], selected: Vec<u32>) -> Result<Self> {
        let n_values = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n > 0 && n <= u32::MAX as usize)
            .ok_or_else(|| Error::payload(format!("item shape {shape:?} must hold 1 to 2^32 - 1 values")))?;
        if let Some(p) = selected.windows(2).position(|w| w[1] <= w[0]) {
            return Err(Error::payload(format!(
                "selection not strictly ascending at position {}: {} after {}",
                p + 1,
                selected[p + 1],
                selected[p]
            )));
        }
        if let Some(&last) = selected.last()
            && last as usize >= n_values
        {
            return Err(Error::payload(format!(
                "selected index {last} out of range for items of {shape:?} ({n_values} values)"
            )));
        }
        let mut runs: Vec<Run> = Vec::new();
        for &i in &selected {
            match runs.last_mut() {
                Some(r) if r.start + r.len == i => r.len += 1,
                _ => runs.push(Run { start: i, len: 1 }),
            }
        }
        let copy_runs = selected.len() >= RUN_COPY_MIN_MEAN * runs.len().max(1);
        Ok(StaticPlan {
            shape,
            n_values,
            selected,
            runs,
            copy_runs,
        })
    }

    /// A plan sending every value (no mask).
    pub fn all(shape: [usize; 3]) -> Result<Self> {
        let n: usize = shape.iter().product();
        let n = u32::try_from(n).map_err(|_| Error::payload(format!("item shape {shape:?} too large")))?;
        Self::new(shape, (0..n).collect())
    }

    /// Item shape `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Values of a full item.
    pub fn n_values(&self) -> usize {
        self.n_values
    }

    /// Values sent per item.
    pub fn n_selected(&self) -> usize {
        self.selected.len()
    }

    /// The selected indices, ascending.
    pub fn selected(&self) -> &[u32] {
        &self.selected
    }

    /// Number of contiguous runs in the selection.
    pub fn n_runs(&self) -> usize {
        self.runs.len()
    }
}

/// How a payload's items were selected: what a decoder needs besides bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// The same values of every item (static mask, or everything).
    Static(StaticPlan),
    /// Per-item cell masks over this layout.
    Dynamic(CellLayout),
}

impl Selection {
    /// The selection an artifact implies.
    pub fn for_artifact(artifact: &Artifact) -> Result<Self> {
        let shape = artifact.manifest.dataset.shape;
        Ok(match &artifact.mask {
            ArtifactMask::None => Selection::Static(StaticPlan::all(shape)?),
            ArtifactMask::Static { selected, .. } => Selection::Static(StaticPlan::new(shape, selected.clone())?),
            ArtifactMask::Dynamic { layout, .. } => Selection::Dynamic(layout.clone()),
        })
    }

    /// Item shape `[C, H, W]`.
    pub fn shape(&self) -> [usize; 3] {
        match self {
            Selection::Static(p) => p.shape,
            Selection::Dynamic(l) => l.input,
        }
    }

    /// The largest payload `n_items` items can produce.
    pub fn max_payload_bytes(&self, dtype: StoredDtype, n_items: usize) -> usize {
        match self {
            Selection::Static(p) => static_payload_bytes(n_items, p.n_selected(), dtype),
            Selection::Dynamic(l) => dynamic_max_payload_bytes(l, dtype, n_items),
        }
    }
}

/// Exact payload size of `n_items` static items of `n_selected` values:
/// `20 + n_items · n_selected · dtype size` (saturating, so absurd requests
/// compare as huge instead of wrapping).
pub fn static_payload_bytes(n_items: usize, n_selected: usize, dtype: StoredDtype) -> usize {
    let per = n_selected.saturating_mul(dtype.value_bytes());
    HEADER_BYTES.saturating_add(n_items.saturating_mul(per))
}

/// Largest payload of `n_items` dynamic items (every cell selected):
/// `20 + n_items · (ceil(cells/8) + values · dtype size)`.
pub fn dynamic_max_payload_bytes(layout: &CellLayout, dtype: StoredDtype, n_items: usize) -> usize {
    let per = layout.n_cells().div_ceil(8) + layout.n_values() * dtype.value_bytes();
    HEADER_BYTES.saturating_add(n_items.saturating_mul(per))
}

/// One item to send.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a, T> {
    /// Its index in the split: not sent (the client knows what it asked
    /// for), only named in errors.
    pub index: u32,
    /// All its stored values, row-major `[C, H, W]`.
    pub values: &'a [T],
}

fn count_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::payload(format!("{n} {what} do not fit the u32 field")))
}

/// Packs items under a static selection: header, then per item the
/// selected values in mask order.
pub fn pack_static<T: WireValue>(plan: &StaticPlan, items: &[ItemRef<'_, T>]) -> Result<Vec<u8>> {
    let per = plan.n_selected() * T::BYTES;
    let total = items
        .len()
        .checked_mul(per)
        .and_then(|b| b.checked_add(HEADER_BYTES))
        .ok_or_else(|| Error::payload(format!("{} items overflow the payload size", items.len())))?;
    let mut out = vec![0u8; total];
    Header {
        dtype: T::DTYPE,
        dynamic: false,
        item_count: count_u32(items.len(), "items")?,
        values_per_item: count_u32(plan.n_selected(), "values")?,
        cells_per_item: 0,
    }
    .write(&mut out[..HEADER_BYTES]);
    // Checked for every item first: with an empty selection `per` is 0 and
    // `chunks_exact_mut` would panic, and nothing is sent to check per chunk.
    if let Some(item) = items.iter().find(|item| item.values.len() != plan.n_values) {
        return Err(Error::payload(format!(
            "item {} has {} values, the selection is for {}",
            item.index,
            item.values.len(),
            plan.n_values
        )));
    }
    if per > 0 {
        for (item, chunk) in items.iter().zip(out[HEADER_BYTES..].chunks_exact_mut(per)) {
            T::gather(item.values, plan, chunk);
        }
    }
    Ok(out)
}

/// Packs items `indices` of `set` under a static selection.
pub fn pack_static_set(set: &ImageSet, indices: &[u32], plan: &StaticPlan) -> Result<Vec<u8>> {
    fn items<'a, T>(values: &'a [T], set: &ImageSet, indices: &[u32], n: usize) -> Result<Vec<ItemRef<'a, T>>> {
        indices
            .iter()
            .map(|&i| {
                let k = i as usize;
                if k >= set.len() {
                    return Err(Error::payload(format!(
                        "item index {i} out of range ({} items)",
                        set.len()
                    )));
                }
                let values = values
                    .get(k * n..(k + 1) * n)
                    .ok_or_else(|| Error::payload(format!("item {i} lies outside the stored values")))?;
                Ok(ItemRef { index: i, values })
            })
            .collect()
    }
    if set.shape != plan.shape {
        return Err(Error::payload(format!(
            "set of {:?} items, selection for {:?}",
            set.shape, plan.shape
        )));
    }
    let n = plan.n_values;
    match &set.pixels {
        Pixels::U8(v) => pack_static(plan, &items(v, set, indices, n)?),
        Pixels::F32(v) => pack_static(plan, &items(v, set, indices, n)?),
    }
}

/// Packs items under per-item cell masks: header, then per item the mask
/// bits (LSB-first, `ceil(cells/8)` bytes) and the values of selected cells
/// in mask order.
pub fn pack_dynamic<T: WireValue>(
    layout: &CellLayout,
    items: &[ItemRef<'_, T>],
    cell_masks: &[Vec<bool>],
) -> Result<Vec<u8>> {
    if cell_masks.len() != items.len() {
        return Err(Error::payload(format!(
            "{} cell masks for {} items",
            cell_masks.len(),
            items.len()
        )));
    }
    let n_cells = layout.n_cells();
    let n_values = layout.n_values();
    let mut out = vec![0u8; HEADER_BYTES];
    Header {
        dtype: T::DTYPE,
        dynamic: true,
        item_count: count_u32(items.len(), "items")?,
        values_per_item: count_u32(n_values, "values")?,
        cells_per_item: count_u32(n_cells, "cells")?,
    }
    .write(&mut out);
    for (item, mask) in items.iter().zip(cell_masks) {
        if item.values.len() != n_values || mask.len() != n_cells {
            return Err(Error::payload(format!(
                "item {} has {} values and {} mask cells, the layout needs {n_values} and {n_cells}",
                item.index,
                item.values.len(),
                mask.len()
            )));
        }
        let sent: usize = mask
            .iter()
            .zip(&layout.values_per_cell)
            .filter(|(on, _)| **on)
            .map(|(_, n)| n)
            .sum();
        out.reserve(n_cells.div_ceil(8) + sent * T::BYTES);
        let bits_at = out.len();
        out.resize(bits_at + n_cells.div_ceil(8), 0);
        for (c, _) in mask.iter().enumerate().filter(|(_, on)| **on) {
            out[bits_at + c / 8] |= 1 << (c % 8);
        }
        for (v, &cell) in item.values.iter().zip(&layout.cell_of_value) {
            if mask[cell] {
                v.put(&mut out);
            }
        }
    }
    Ok(out)
}

/// Dense items decoded from payloads, zeros where nothing was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// Item shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Item indices, in payload order: the indices the payload was asked
    /// for (the payload does not carry them; decoders take them).
    pub indices: Vec<u32>,
    /// Labels, in payload order, when fetched from the labels endpoint;
    /// empty otherwise (payloads carry no labels).
    pub labels: Vec<u16>,
    /// Dense stored values, row-major `[N, C, H, W]`, 0 where not sent.
    pub values: Pixels,
    /// Dynamic only: each item's cell mask, item-major (`n_cells` per item).
    pub cell_masks: Option<Vec<bool>>,
}

impl DecodedBatch {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The dense values and labels as an [`ImageSet`] (0 where not sent).
    ///
    /// An [`ImageSet`] counts its items by its labels, so this needs one
    /// label per item: a batch decoded without labels is an error here.
    pub fn into_image_set(self) -> Result<ImageSet> {
        if self.labels.len() != self.indices.len() {
            return Err(Error::payload(format!(
                "{} items but {} labels: fetch labels to build an image set",
                self.indices.len(),
                self.labels.len()
            )));
        }
        Ok(ImageSet {
            shape: self.shape,
            pixels: self.values,
            labels: self.labels,
        })
    }

    /// The network's input: `(v · scale − mean[c]) / std[c] · upscale` at
    /// sent values and exactly 0 elsewhere.
    ///
    /// Masking happens after normalisation in the method (0 = the mean), so
    /// the zeros of the dense raw values must not be normalised themselves.
    pub fn masked_normalised(
        &self,
        selection: &Selection,
        norm: &Normalisation,
        upscale: f32,
    ) -> Result<Vec<f32>> {
        let [c, h, w] = self.shape;
        let (plane, n) = (h * w, c * h * w);
        if selection.shape() != self.shape || norm.mean.len() != c || norm.std.len() != c {
            return Err(Error::payload(format!(
                "selection for {:?} and {} / {} mean / std values do not fit items of {:?}",
                selection.shape(),
                norm.mean.len(),
                norm.std.len(),
                self.shape
            )));
        }
        let coef: Vec<(f32, f32)> = (0..c)
            .map(|ch| {
                let a = norm.scale as f32 / norm.std[ch] * upscale;
                (a, norm.mean[ch] / norm.std[ch] * upscale)
            })
            .collect();
        let mut out = vec![0f32; self.len() * n];
        for (k, item) in out.chunks_exact_mut(n.max(1)).enumerate() {
            let base = k * n;
            match selection {
                Selection::Static(plan) => {
                    for &i in plan.selected() {
                        let i = i as usize;
                        let (a, b) = coef[i / plane];
                        item[i] = self.values.get(base + i) * a - b;
                    }
                }
                Selection::Dynamic(layout) => {
                    let masks = self
                        .cell_masks
                        .as_deref()
                        .ok_or_else(|| Error::payload("dynamic selection but the batch holds no cell masks"))?;
                    let cells = masks
                        .get(k * layout.n_cells()..(k + 1) * layout.n_cells())
                        .ok_or_else(|| Error::payload("fewer cell masks than items"))?;
                    for (i, (o, &cell)) in item.iter_mut().zip(&layout.cell_of_value).enumerate() {
                        if cells[cell] {
                            let (a, b) = coef[i / plane];
                            *o = self.values.get(base + i) * a - b;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Decodes the payload that answered a request for `indices` under
/// `selection`. The result's `indices` are `indices`, its `labels` empty.
pub fn unpack(bytes: &[u8], selection: &Selection, indices: &[u32]) -> Result<DecodedBatch> {
    match selection {
        Selection::Static(plan) => unpack_static(bytes, plan, indices),
        Selection::Dynamic(layout) => unpack_dynamic(bytes, layout, indices),
    }
}

/// Decodes a static payload that answered a request for `indices` into
/// dense items (0 where not sent).
pub fn unpack_static(bytes: &[u8], plan: &StaticPlan, indices: &[u32]) -> Result<DecodedBatch> {
    let header = Header::parse(bytes)?;
    if header.dynamic || header.cells_per_item != 0 {
        return Err(Error::payload("a dynamic payload, expected a static one"));
    }
    if header.values_per_item as usize != plan.n_selected() {
        return Err(Error::payload(format!(
            "{} values per item, the selection sends {}",
            header.values_per_item,
            plan.n_selected()
        )));
    }
    match header.dtype {
        StoredDtype::U8 => unpack_static_typed::<u8>(bytes, &header, plan, indices),
        StoredDtype::F32 => unpack_static_typed::<f32>(bytes, &header, plan, indices),
    }
}

fn unpack_static_typed<T: WireValue>(
    bytes: &[u8],
    header: &Header,
    plan: &StaticPlan,
    indices: &[u32],
) -> Result<DecodedBatch> {
    let body = &bytes[HEADER_BYTES..];
    let per = plan.n_selected() * T::BYTES;
    // The count must match the request: with no per-item framing, that and
    // the exact length below are all that tie the bytes to the items.
    let count = check_count(header, indices)?;
    if count.checked_mul(per) != Some(body.len()) {
        return Err(Error::payload(format!(
            "{count} items of {per} bytes need {} bytes after the header, found {}",
            count as u128 * per as u128,
            body.len()
        )));
    }
    let n = plan.n_values;
    let dense_len = count
        .checked_mul(n)
        .ok_or_else(|| Error::payload(format!("{count} items of {n} values overflow")))?;
    let mut dense = vec![T::default(); dense_len];
    // An empty selection sends nothing per item (`per` = 0): the items stay
    // all zero, and `chunks_exact(0)` must not be called.
    if per > 0 {
        for (chunk, item) in body.chunks_exact(per).zip(dense.chunks_exact_mut(n)) {
            for (&i, v) in plan.selected.iter().zip(chunk.chunks_exact(T::BYTES)) {
                item[i as usize] = T::read(v);
            }
        }
    }
    Ok(DecodedBatch {
        shape: plan.shape,
        indices: indices.to_vec(),
        labels: Vec::new(),
        values: T::into_pixels(dense),
        cell_masks: None,
    })
}

/// Decodes a dynamic payload that answered a request for `indices` into
/// dense items and their cell masks.
pub fn unpack_dynamic(bytes: &[u8], layout: &CellLayout, indices: &[u32]) -> Result<DecodedBatch> {
    let header = Header::parse(bytes)?;
    if !header.dynamic {
        return Err(Error::payload("a static payload, expected a dynamic one"));
    }
    if header.cells_per_item as usize != layout.n_cells() || header.values_per_item as usize != layout.n_values() {
        return Err(Error::payload(format!(
            "{} cells and {} values per item, the layout has {} and {}",
            header.cells_per_item,
            header.values_per_item,
            layout.n_cells(),
            layout.n_values()
        )));
    }
    match header.dtype {
        StoredDtype::U8 => unpack_dynamic_typed::<u8>(bytes, &header, layout, indices),
        StoredDtype::F32 => unpack_dynamic_typed::<f32>(bytes, &header, layout, indices),
    }
}

fn unpack_dynamic_typed<T: WireValue>(
    bytes: &[u8],
    header: &Header,
    layout: &CellLayout,
    indices: &[u32],
) -> Result<DecodedBatch> {
    let n_cells = layout.n_cells();
    let n = layout.n_values();
    let bits = n_cells.div_ceil(8);
    let count = check_count(header, indices)?;
    let mut rest = &bytes[HEADER_BYTES..];
    // Every item needs at least its mask bits: bound the count by the bytes
    // present too, before allocating anything for it (a layout has at least
    // one cell, `max(1)` only keeps the division defined).
    if count > rest.len() / bits.max(1) {
        return Err(Error::payload(format!(
            "{count} items cannot fit in {} bytes",
            rest.len()
        )));
    }
    let mut dense = vec![T::default(); count * n];
    let mut masks = vec![false; count * n_cells];
    for k in 0..count {
        if rest.len() < bits {
            return Err(Error::payload(format!("item {k} of {count} is truncated")));
        }
        let mask_bytes = &rest[..bits];
        if !n_cells.is_multiple_of(8) && mask_bytes[bits - 1] >> (n_cells % 8) != 0 {
            return Err(Error::payload(format!(
                "item {k}: padding bits of its mask are set"
            )));
        }
        let mask = &mut masks[k * n_cells..(k + 1) * n_cells];
        let mut sent = 0usize;
        for (c, m) in mask.iter_mut().enumerate() {
            *m = mask_bytes[c / 8] >> (c % 8) & 1 == 1;
            if *m {
                sent += layout.values_per_cell[c];
            }
        }
        rest = &rest[bits..];
        let need = sent * T::BYTES;
        if rest.len() < need {
            return Err(Error::payload(format!(
                "item {k}: its mask selects {sent} values ({need} bytes), {} bytes left",
                rest.len()
            )));
        }
        let mut vals = rest[..need].chunks_exact(T::BYTES);
        let item = &mut dense[k * n..(k + 1) * n];
        for (d, &cell) in item.iter_mut().zip(&layout.cell_of_value) {
            if mask[cell]
                && let Some(v) = vals.next()
            {
                *d = T::read(v);
            }
        }
        rest = &rest[need..];
    }
    if !rest.is_empty() {
        return Err(Error::payload(format!(
            "{} trailing bytes after the last item",
            rest.len()
        )));
    }
    Ok(DecodedBatch {
        shape: layout.input,
        indices: indices.to_vec(),
        labels: Vec::new(),
        values: T::into_pixels(dense),
        cell_masks: Some(masks),
    })
}

/// Packs `bits` (one per cell) LSB-first, as the wire does.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (c, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        out[c / 8] |= 1 << (c % 8);
    }
    out
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
