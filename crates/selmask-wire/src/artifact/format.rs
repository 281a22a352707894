//! The versioned artifact directory: what a trained selection model leaves
//! for the storage server and the client.
//!
//! ```text
//! <artifact>/
//!   manifest.json            format, version, geometry, normalisation, mask
//!                            summary, accuracies, provenance, file hashes
//!   weights.safetensors      the task network (f32, names chosen by the caller)
//!   mask.npy                 static only: the cell grid, f32 0/1, [c, h, w]
//!   selected.npy             static only: the selected value indices, u32,
//!                            ascending, row-major [C, H, W] ("mask order")
//!   mask_model.safetensors   dynamic only: the mask model g (and bias b)
//! ```
//!
//! Why both `mask.npy` and `selected.npy`: the grid is what was trained (and
//! what a person inspects), the index list is what the server uses on every
//! request; the reader checks that one is the other under the granularity,
//! so they can never drift apart.
//!
//! Writing is atomic at the directory level (everything goes to a temporary
//! sibling directory, is fsynced, then renamed into place), so a reader never
//! sees half an artifact. Reading verifies the format name and version, every
//! listed file's presence and SHA-256, and every shape, before anything is
//! served from it. Fields may be *added* within `format_version` 1 (readers
//! ignore unknown fields); any change in meaning bumps the version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::{DatasetInfo, Pixels};
use crate::artifact::npy::{from_npy_bytes, to_npy_bytes};
use crate::artifact::safetensors::{TensorMap, from_safetensors_bytes, to_safetensors_bytes};
use crate::granularity::{CellLayout, Granularity};
use crate::error::{Error, Result};
use crate::util::is_plain_name;

/// `manifest.json`'s `format` value.
pub const FORMAT_NAME: &str = "selmask-artifact";
/// The version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The static mask grid.
pub const MASK_FILE: &str = "mask.npy";
/// The static selection, in mask order.
pub const SELECTED_FILE: &str = "selected.npy";
/// The task network.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The dynamic mask model.
pub const MASK_MODEL_FILE: &str = "mask_model.safetensors";

/// Tolerance when comparing the manifest's fractions with the files' (they
/// are computed from the same integers, so only float formatting differs).
const FRACTION_TOL: f64 = 1e-9;

/// How input values are stored (and sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDtype {
    /// 8-bit images; scaled by 1/255 before normalisation.
    U8,
    /// Floating-point values, normalised as they are.
    F32,
}

impl StoredDtype {
    /// The dtype of a set of stored pixels.
    pub fn of(pixels: &Pixels) -> Self {
        match pixels {
            Pixels::U8(_) => StoredDtype::U8,
            Pixels::F32(_) => StoredDtype::F32,
        }
    }

    /// Bytes per value.
    pub fn value_bytes(self) -> usize {
        match self {
            StoredDtype::U8 => 1,
            StoredDtype::F32 => 4,
        }
    }

    /// The factor applied before normalisation (1/255 for u8).
    pub fn unit_scale(self) -> f64 {
        match self {
            StoredDtype::U8 => 1.0 / 255.0,
            StoredDtype::F32 => 1.0,
        }
    }

    /// `"u8"` or `"f32"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredDtype::U8 => "u8",
            StoredDtype::F32 => "f32",
        }
    }
}

/// Which kind of selection an artifact carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// One mask for every input (`mask.npy`, `selected.npy`).
    Static,
    /// A mask per input, computed on the server (`mask_model.safetensors`).
    Dynamic,
    /// No mask: everything is sent (the full-data baseline).
    None,
}

impl MaskKind {
    /// `"static"`, `"dynamic"` or `"none"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskKind::Static => "static",
            MaskKind::Dynamic => "dynamic",
            MaskKind::None => "none",
        }
    }
}

/// `(v * scale - mean[c]) / std[c]`, per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Per-channel mean (after scaling).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
    /// Factor applied to stored values first: 1/255 for u8, 1 for f32.
    pub scale: f64,
}

/// The data an artifact was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSection {
    /// The dataset's name (`mnist`, ...); the server serves splits of the
    /// dataset registered under this name.
    pub name: String,
    /// One input's shape `[C, H, W]`.
    pub shape: [usize; 3],
    /// Number of classes.
    pub n_classes: usize,
    /// How values are stored and sent.
    pub dtype: StoredDtype,
    /// How the client normalises what it receives.
    pub normalisation: Normalisation,
}

impl DatasetSection {
    /// The section for a dataset of the main crate.
    pub fn from_info(info: &DatasetInfo, dtype: StoredDtype) -> Self {
        DatasetSection {
            name: info.name.to_string(),
            shape: info.shape,
            n_classes: info.n_classes,
            dtype,
            normalisation: Normalisation {
                mean: info.mean.clone(),
                std: info.std.clone(),
                scale: dtype.unit_scale(),
            },
        }
    }

    /// Values in one input.
    pub fn values_per_item(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What the mask selects, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskSection {
    /// `static`, `dynamic` or `none`.
    #[serde(rename = "type")]
    pub kind: MaskKind,
    /// The granularity (its `Display` name); absent for `none`.
    pub granularity: Option<Granularity>,
    /// The mask grid's shape `[c, h, w]`; absent for `none`.
    pub shape: Option<[usize; 3]>,
    /// Q: the fraction of mask cells selected (an average over the
    /// evaluation set for dynamic masks).
    pub q: f64,
    /// The fraction of input values (= bytes) that moves; differs from Q on
    /// uneven grids.
    pub bytes_fraction: f64,
    /// Static only: number of selected cells.
    pub selected_cells: Option<usize>,
    /// Static only: number of selected input values per item.
    pub selected_values: Option<usize>,
    /// The factor inputs are multiplied by after masking when "input drop
    /// upscaling" was on (cells / selected cells), 1.0 when it was off.
    pub input_drop_upscaling: f64,
}

/// Accuracies of the exported checkpoint, where measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracies {
    /// On the validation split.
    pub val: Option<f64>,
    /// On the test split.
    pub test: Option<f64>,
}

/// Where the artifact came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The training run's directory.
    pub run_dir: String,
    /// The checkpoint exported.
    pub checkpoint: String,
}

/// One file of the artifact and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Plain file name inside the artifact directory.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] when written by this code.
    pub format_version: u32,
    /// The program and version that wrote it (`selmask 0.1.0`).
    pub created_by: String,
    /// Data geometry, dtype and normalisation.
    pub dataset: DatasetSection,
    /// The selection.
    pub mask: MaskSection,
    /// Accuracies of this checkpoint.
    pub accuracy: Accuracies,
    /// The epoch the checkpoint was taken after.
    pub epoch: usize,
    /// Provenance.
    pub source: SourceInfo,
    /// The task network, described by the caller (kind + config); opaque here.
    pub network: serde_json::Value,
    /// Every other file with its hash.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The entry for file `name`, if listed.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// The selection to export.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSpec {
    /// No mask: everything is sent.
    None,
    /// A static mask: one 0/1 per cell, row-major `[c, h, w]`. Q, the byte
    /// fraction and the selected indices are derived from it.
    Static { granularity: Granularity, cells: Vec<f32> },
    /// A dynamic mask: its model's tensors and the Q / byte fraction measured
    /// on the evaluation set.
    Dynamic {
        granularity: Granularity,
        q: f64,
        bytes_fraction: f64,
        mask_model: TensorMap,
    },
}

/// Everything [`write_artifact`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSpec {
    /// The writing program and version, e.g. `"selmask 0.1.0"`.
    pub created_by: String,
    /// Data geometry, dtype and normalisation.
    pub dataset: DatasetSection,
    /// The selection.
    pub mask: MaskSpec,
    /// Input-drop-upscaling factor; 1.0 when off.
    pub input_drop_upscaling: f64,
    /// Accuracies of this checkpoint.
    pub accuracy: Accuracies,
    /// The epoch of the checkpoint.
    pub epoch: usize,
    /// Provenance.
    pub source: SourceInfo,
    /// The network's description (kind + config), stored as given.
    pub network: serde_json::Value,
    /// The task network's tensors.
    pub weights: TensorMap,
}

/// The selection of a loaded artifact, checked against its manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactMask {
    /// Everything is sent.
    None,
    /// One mask for all inputs.
    Static {
        /// Cell geometry of the granularity on the dataset's shape.
        layout: CellLayout,
        /// The grid, 0/1, row-major `[c, h, w]`.
        cells: Vec<f32>,
        /// Selected value indices, strictly ascending, row-major `[C, H, W]`.
        selected: Vec<u32>,
    },
    /// A mask per input, from a model the main crate runs.
    Dynamic {
        /// Cell geometry of the granularity on the dataset's shape.
        layout: CellLayout,
        /// The mask model's tensors.
        mask_model: TensorMap,
    },
}

/// A verified artifact, loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json`'s bytes: identifies the artifact (the
    /// manifest holds every other file's hash), so a client can check that
    /// the server serves the same one.
    pub manifest_sha256: String,
    /// The selection.
    pub mask: ArtifactMask,
    /// The task network's tensors.
    pub weights: TensorMap,
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Values whose cell is selected, ascending: the "mask order".
pub fn selected_values(layout: &CellLayout, cells: &[f32]) -> Vec<u32> {
    layout
        .cell_of_value
        .iter()
        .enumerate()
        .filter(|&(_, &cell)| cells.get(cell).is_some_and(|&m| m == 1.0))
        .map(|(v, _)| v as u32)
        .collect()
}

/// Checks the dataset section; `err(field, reason)` builds the error, so the
/// writer reports spec errors and the reader file errors.
fn check_dataset(d: &DatasetSection, err: &dyn Fn(&str, String) -> Error) -> Result<()> {
    if !is_plain_name(&d.name) {
        return Err(err(
            "dataset.name",
            format!("'{}' is not a plain name (letters, digits, '.', '_', '-')", d.name),
        ));
    }
    let [c, h, w] = d.shape;
    let n = c.checked_mul(h).and_then(|x| x.checked_mul(w));
    if c == 0 || h == 0 || w == 0 || n.is_none_or(|n| n > u32::MAX as usize) {
        return Err(err(
            "dataset.shape",
            format!("{:?} must be positive and hold at most 2^32 - 1 values", d.shape),
        ));
    }
    if d.n_classes == 0 || d.n_classes > u16::MAX as usize + 1 {
        return Err(err(
            "dataset.n_classes",
            format!("{} must be in 1..=65536", d.n_classes),
        ));
    }
    let norm = &d.normalisation;
    if norm.mean.len() != c || norm.std.len() != c {
        return Err(err(
            "dataset.normalisation",
            format!("{} means and {} stds for {c} channels", norm.mean.len(), norm.std.len()),
        ));
    }
    if let Some(s) = norm.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(err(
            "dataset.normalisation.std",
            format!("{s} must be finite and positive"),
        ));
    }
    if let Some(m) = norm.mean.iter().find(|m| !m.is_finite()) {
        return Err(err("dataset.normalisation.mean", format!("{m} must be finite")));
    }
    let unit = d.dtype.unit_scale();
    if (norm.scale - unit).abs() > 1e-12 * unit {
        return Err(err(
            "dataset.normalisation.scale",
            format!(
                "{} does not match dtype {} (expected {unit})",
                norm.scale,
                d.dtype.as_str()
            ),
        ));
    }
    Ok(())
}

fn check_fraction(name: &str, v: f64, err: &dyn Fn(&str, String) -> Error) -> Result<()> {
    if !(0.0..=1.0).contains(&v) {
        return Err(err(name, format!("{v} must be in [0, 1]")));
    }
    Ok(())
}

fn check_common(
    upscaling: f64,
    accuracy: &Accuracies,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<()> {
    if !(upscaling.is_finite() && upscaling > 0.0) {
        return Err(err(
            "mask.input_drop_upscaling",
            format!("{upscaling} must be finite and positive (1.0 when off)"),
        ));
    }
    for (name, acc) in [("accuracy.val", accuracy.val), ("accuracy.test", accuracy.test)] {
        if let Some(a) = acc {
            check_fraction(name, a, err)?;
        }
    }
    Ok(())
}

/// Checks that a granularity's mask shape on `shape` is `declared`, and
/// returns its layout.
fn layout_for(
    granularity: Granularity,
    shape: [usize; 3],
    declared: Option<[usize; 3]>,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<CellLayout> {
    let expected = granularity
        .mask_shape(shape)
        .map_err(|e| err("mask.granularity", e.to_string()))?;
    if let Some(d) = declared
        && d != expected
    {
        return Err(err(
            "mask.shape",
            format!("{d:?} does not match granularity '{granularity}' on {shape:?}, which gives {expected:?}"),
        ));
    }
    Ok(granularity.layout(shape)?)
}

/// Writes `spec` as an artifact directory at `dir`, atomically.
///
/// Refuses to replace an existing `dir` unless `overwrite`. Returns the
/// manifest written.
pub fn write_artifact(dir: &Path, spec: &ArtifactSpec, overwrite: bool) -> Result<Manifest> {
    let spec_err = |field: &str, reason: String| Error::spec(field, reason);
    check_dataset(&spec.dataset, &spec_err)?;
    check_common(spec.input_drop_upscaling, &spec.accuracy, &spec_err)?;
    let shape = spec.dataset.shape;
    let n_values = spec.dataset.values_per_item();

    let mut files: Vec<(&'static str, Vec<u8>)> =
        vec![(WEIGHTS_FILE, to_safetensors_bytes(WEIGHTS_FILE, &spec.weights)?)];
    let mask = match &spec.mask {
        MaskSpec::None => MaskSection {
            kind: MaskKind::None,
            granularity: None,
            shape: None,
            q: 1.0,
            bytes_fraction: 1.0,
            selected_cells: None,
            selected_values: None,
            input_drop_upscaling: spec.input_drop_upscaling,
        },
        MaskSpec::Static { granularity, cells } => {
            let layout = layout_for(*granularity, shape, None, &spec_err)?;
            if cells.len() != layout.n_cells() {
                return Err(spec_err(
                    "mask.cells",
                    format!(
                        "{} cells given, granularity '{granularity}' on {shape:?} has {:?} = {}",
                        cells.len(),
                        layout.mask,
                        layout.n_cells()
                    ),
                ));
            }
            if let Some((i, v)) = cells.iter().enumerate().find(|(_, v)| !(**v == 0.0 || **v == 1.0)) {
                return Err(spec_err(
                    "mask.cells",
                    format!("cell {i} is {v}; a static mask must be hard (0 or 1)"),
                ));
            }
            let selected = selected_values(&layout, cells);
            let n_cells_on = cells.iter().filter(|&&v| v == 1.0).count();
            files.push((MASK_FILE, to_npy_bytes(MASK_FILE, &layout.mask, cells)?));
            files.push((
                SELECTED_FILE,
                to_npy_bytes(SELECTED_FILE, &[selected.len()], &selected)?,
            ));
            MaskSection {
                kind: MaskKind::Static,
                granularity: Some(*granularity),
                shape: Some(layout.mask),
                q: n_cells_on as f64 / layout.n_cells() as f64,
                bytes_fraction: selected.len() as f64 / n_values as f64,
                selected_cells: Some(n_cells_on),
                selected_values: Some(selected.len()),
                input_drop_upscaling: spec.input_drop_upscaling,
            }
        }
        MaskSpec::Dynamic {
            granularity,
            q,
            bytes_fraction,
            mask_model,
        } => {
            let layout = layout_for(*granularity, shape, None, &spec_err)?;
            check_fraction("mask.q", *q, &spec_err)?;
            check_fraction("mask.bytes_fraction", *bytes_fraction, &spec_err)?;
            files.push((MASK_MODEL_FILE, to_safetensors_bytes(MASK_MODEL_FILE, mask_model)?));
            MaskSection {
                kind: MaskKind::Dynamic,
                granularity: Some(*granularity),
                shape: Some(layout.mask),
                q: *q,
                bytes_fraction: *bytes_fraction,
                selected_cells: None,
                selected_values: None,
                input_drop_upscaling: spec.input_drop_upscaling,
            }
        }
    };
    let manifest = Manifest {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        created_by: spec.created_by.clone(),
        dataset: spec.dataset.clone(),
        mask,
        accuracy: spec.accuracy.clone(),
        epoch: spec.epoch,
        source: spec.source.clone(),
        network: spec.network.clone(),
        files: files
            .iter()
            .map(|(name, bytes)| FileEntry {
                name: name.to_string(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|source| Error::Json {
        path: dir.join(MANIFEST_FILE),
        source,
    })?;
    manifest_bytes.push(b'\n');
    files.push((MANIFEST_FILE, manifest_bytes));
    write_dir_atomically(dir, &files, overwrite)?;
    Ok(manifest)
}

/// Whether `dir` is an artifact directory selmask wrote: its manifest is
/// one of ours and every entry is a file the manifest lists (or the
/// manifest itself). Only such a directory may be replaced by `--overwrite`.
pub fn artifact_ownership(dir: &Path) -> std::result::Result<(), String> {
    #[derive(Deserialize)]
    struct Listed {
        format: String,
        #[serde(default)]
        files: Vec<FileName>,
    }
    #[derive(Deserialize)]
    struct FileName {
        name: String,
    }
    let path = dir.join(MANIFEST_FILE);
    let bytes = read_capped(&path, MAX_MANIFEST_BYTES).map_err(|e| format!("it has no readable {MANIFEST_FILE} ({e})"))?;
    let listed: Listed = serde_json::from_slice(&bytes).map_err(|e| format!("its {MANIFEST_FILE} is not a selmask manifest ({e})"))?;
    if listed.format != FORMAT_NAME {
        return Err(format!("its {MANIFEST_FILE} has format '{}', not '{FORMAT_NAME}'", listed.format));
    }
    crate::util::only_entries(dir, &|name| name == MANIFEST_FILE || listed.files.iter().any(|f| f.name == name))
}

/// The ownership check of artifact directories, for `--overwrite`.
const ARTIFACT_OWNER: crate::util::Ownership<'static> =
    crate::util::Ownership { what: "artifact", check: &artifact_ownership };

/// Largest manifest read (a real one is a few kB).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Reads `path` whole, refusing files over `max` bytes before reading.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > max {
        return Err(Error::invalid(path, "size", format!("{len} bytes, more than the {max} a manifest may have")));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Creates `target` holding `files`, atomically (see
/// [`crate::util::replace_dir_atomically`]); with `overwrite`, an existing
/// target is replaced only if it is an artifact selmask wrote.
fn write_dir_atomically(target: &Path, files: &[(&str, Vec<u8>)], overwrite: bool) -> Result<()> {
    crate::util::replace_dir_atomically(target, overwrite, &ARTIFACT_OWNER, |dir| {
        for (file, bytes) in files {
            crate::util::write_synced(&dir.join(file), bytes)?;
        }
        Ok(())
    })
}

/// Reads a listed file and checks its size and SHA-256.
fn read_verified(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let entry = manifest.file(name).ok_or_else(|| {
        Error::invalid(
            dir.join(MANIFEST_FILE),
            "files",
            format!(
                "does not list {name}, which a {} artifact needs",
                manifest.mask.kind.as_str()
            ),
        )
    })?;
    // The size first, from the file system: a file far larger than listed
    // is refused before it is read into memory.
    let on_disk = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile { file: path });
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    if on_disk != entry.bytes {
        return Err(Error::invalid(
            path,
            "bytes",
            format!("file has {on_disk} bytes, manifest says {}", entry.bytes),
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let found = sha256_hex(&bytes);
    if found != entry.sha256.to_ascii_lowercase() {
        return Err(Error::HashMismatch {
            file: path,
            expected: entry.sha256.clone(),
            found,
        });
    }
    if bytes.len() as u64 != entry.bytes {
        return Err(Error::invalid(
            path,
            "bytes",
            format!("file has {} bytes, manifest says {}", bytes.len(), entry.bytes),
        ));
    }
    Ok(bytes)
}

/// Reads and fully verifies the artifact at `dir`.
pub fn read_artifact(dir: &Path) -> Result<Artifact> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_bytes = match std::fs::metadata(&manifest_path) {
        Ok(_) => read_capped(&manifest_path, MAX_MANIFEST_BYTES)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile { file: manifest_path });
        }
        Err(e) => return Err(Error::io(&manifest_path, e)),
    };
    // Format name and version first, from a loose parse: a future version
    // may not fit this version's struct, and "unsupported version 2" is a
    // better message than "missing field".
    let loose: serde_json::Value = serde_json::from_slice(&manifest_bytes).map_err(|source| Error::Json {
        path: manifest_path.clone(),
        source,
    })?;
    let m_err = |field: &str, reason: String| Error::invalid(&manifest_path, field, reason);
    match loose.get("format") {
        Some(serde_json::Value::String(f)) if f == FORMAT_NAME => {}
        other => {
            return Err(m_err(
                "format",
                format!(
                    "{}, expected \"{FORMAT_NAME}\"",
                    other.map_or("missing".to_string(), |v| v.to_string())
                ),
            ));
        }
    }
    match loose.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == FORMAT_VERSION as u64 => {}
        Some(v) => {
            return Err(m_err(
                "format_version",
                format!("unsupported version {v} (this reader knows {FORMAT_VERSION})"),
            ));
        }
        None => return Err(m_err("format_version", "missing or not an integer".into())),
    }
    let manifest: Manifest = serde_json::from_value(loose).map_err(|source| Error::Json {
        path: manifest_path.clone(),
        source,
    })?;
    check_dataset(&manifest.dataset, &m_err)?;
    check_common(manifest.mask.input_drop_upscaling, &manifest.accuracy, &m_err)?;
    check_fraction("mask.q", manifest.mask.q, &m_err)?;
    check_fraction("mask.bytes_fraction", manifest.mask.bytes_fraction, &m_err)?;

    // Every listed file: a plain name, present, with the listed hash.
    for (i, f) in manifest.files.iter().enumerate() {
        if !is_plain_name(&f.name) || f.name == MANIFEST_FILE {
            return Err(m_err(
                &format!("files[{i}].name"),
                format!("'{}' is not a plain file name of the artifact", f.name),
            ));
        }
    }
    for f in &manifest.files {
        read_verified(dir, &manifest, &f.name)?;
    }

    let shape = manifest.dataset.shape;
    let n_values = manifest.dataset.values_per_item();
    let weights = from_safetensors_bytes(WEIGHTS_FILE, &read_verified(dir, &manifest, WEIGHTS_FILE)?)
        .map_err(|e| Error::invalid(dir.join(WEIGHTS_FILE), "tensors", e.to_string()))?;
    let ms = &manifest.mask;
    let mask = match ms.kind {
        MaskKind::None => {
            if ms.granularity.is_some() || ms.shape.is_some() {
                return Err(m_err("mask", "a mask of type none has no granularity or shape".into()));
            }
            if ms.q != 1.0 || ms.bytes_fraction != 1.0 {
                return Err(m_err(
                    "mask.q",
                    format!(
                        "q = {} and bytes_fraction = {} must be 1 without a mask",
                        ms.q, ms.bytes_fraction
                    ),
                ));
            }
            ArtifactMask::None
        }
        MaskKind::Static | MaskKind::Dynamic => {
            let granularity = ms
                .granularity
                .ok_or_else(|| m_err("mask.granularity", format!("missing for a {} mask", ms.kind.as_str())))?;
            let declared = ms
                .shape
                .ok_or_else(|| m_err("mask.shape", format!("missing for a {} mask", ms.kind.as_str())))?;
            let layout = layout_for(granularity, shape, Some(declared), &m_err)?;
            if ms.kind == MaskKind::Dynamic {
                let bytes = read_verified(dir, &manifest, MASK_MODEL_FILE)?;
                let mask_model = from_safetensors_bytes(MASK_MODEL_FILE, &bytes)
                    .map_err(|e| Error::invalid(dir.join(MASK_MODEL_FILE), "tensors", e.to_string()))?;
                ArtifactMask::Dynamic { layout, mask_model }
            } else {
                let (cells, selected) = read_static(dir, &manifest, &layout, n_values)?;
                ArtifactMask::Static {
                    layout,
                    cells,
                    selected,
                }
            }
        }
    };
    Ok(Artifact {
        dir: dir.to_path_buf(),
        manifest_sha256: sha256_hex(&manifest_bytes),
        manifest,
        mask,
        weights,
    })
}

/// Reads `mask.npy` and `selected.npy` and checks them against each other,
/// the layout and the manifest's summary.
fn read_static(
    dir: &Path,
    manifest: &Manifest,
    layout: &CellLayout,
    n_values: usize,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let mask_path = dir.join(MASK_FILE);
    let sel_path = dir.join(SELECTED_FILE);
    let mask = from_npy_bytes::<f32>(MASK_FILE, &read_verified(dir, manifest, MASK_FILE)?)
        .map_err(|e| Error::invalid(&mask_path, "npy", e.to_string()))?;
    if mask.shape != layout.mask {
        return Err(Error::invalid(
            &mask_path,
            "shape",
            format!("{:?}, expected the mask shape {:?}", mask.shape, layout.mask),
        ));
    }
    if let Some((i, v)) = mask.data.iter().enumerate().find(|(_, v)| !(**v == 0.0 || **v == 1.0)) {
        return Err(Error::invalid(
            &mask_path,
            "values",
            format!("cell {i} is {v}; a static mask holds only 0 and 1"),
        ));
    }
    let sel = from_npy_bytes::<u32>(SELECTED_FILE, &read_verified(dir, manifest, SELECTED_FILE)?)
        .map_err(|e| Error::invalid(&sel_path, "npy", e.to_string()))?;
    if sel.shape.len() != 1 {
        return Err(Error::invalid(
            &sel_path,
            "shape",
            format!("{:?}, expected one dimension", sel.shape),
        ));
    }
    for (i, pair) in sel.data.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            return Err(Error::invalid(
                &sel_path,
                "values",
                format!(
                    "not strictly ascending: position {} holds {} after {} (indices must be sorted and unique)",
                    i + 1,
                    pair[1],
                    pair[0]
                ),
            ));
        }
    }
    if let Some(&last) = sel.data.last()
        && last as usize >= n_values
    {
        return Err(Error::invalid(
            &sel_path,
            "values",
            format!(
                "index {last} is out of range for input {:?} ({n_values} values)",
                manifest.dataset.shape
            ),
        ));
    }
    let expected = selected_values(layout, &mask.data);
    if expected != sel.data {
        let at = expected
            .iter()
            .zip(&sel.data)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(sel.data.len()));
        return Err(Error::invalid(
            &sel_path,
            "values",
            format!(
                "does not match mask.npy under granularity '{}': {} indices, mask selects {}, first difference at position {at}",
                manifest.mask.granularity.map(|g| g.to_string()).unwrap_or_default(),
                sel.data.len(),
                expected.len()
            ),
        ));
    }
    let ms = &manifest.mask;
    let on = mask.data.iter().filter(|&&v| v == 1.0).count();
    let q = on as f64 / layout.n_cells() as f64;
    let bf = sel.data.len() as f64 / n_values as f64;
    let m_path = dir.join(MANIFEST_FILE);
    if (ms.q - q).abs() > FRACTION_TOL {
        return Err(Error::invalid(
            &m_path,
            "mask.q",
            format!(
                "{} but mask.npy selects {on} of {} cells (q = {q})",
                ms.q,
                layout.n_cells()
            ),
        ));
    }
    if (ms.bytes_fraction - bf).abs() > FRACTION_TOL {
        return Err(Error::invalid(
            &m_path,
            "mask.bytes_fraction",
            format!(
                "{} but selected.npy holds {} of {n_values} values ({bf})",
                ms.bytes_fraction,
                sel.data.len()
            ),
        ));
    }
    if ms.selected_cells.is_some_and(|c| c != on) || ms.selected_values.is_some_and(|v| v != sel.data.len()) {
        return Err(Error::invalid(
            &m_path,
            "mask.selected_cells",
            format!(
                "{:?} cells / {:?} values, files hold {on} / {}",
                ms.selected_cells,
                ms.selected_values,
                sel.data.len()
            ),
        ));
    }
    Ok((mask.data, sel.data))
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
