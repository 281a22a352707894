//! What the server holds: its limits ([`ServerConfig`]), datasets by name
//! (in memory or in a Zarr store), artifacts by id with their selection
//! ready to serve, and the trait through which the main crate runs dynamic
//! masks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::artifact::format::{Artifact, ArtifactMask, Normalisation, StoredDtype};
use crate::dataset::ImageSet;
use crate::error::{Error, Result};
use crate::granularity::CellLayout;
use crate::transfer::codec;
use crate::transfer::api::{ArtifactListing, DatasetListing, LimitsListing, Listing, SplitListing, WireListing};
use crate::transfer::codec::{Selection, StaticPlan};
use crate::transfer::store::{read_store_info, StoreSplit};
use crate::util::is_plain_name;

/// Server limits and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Most indices in one POST (default 1024).
    pub max_batch: usize,
    /// Largest request body in bytes (default 1 MiB: 1024 indices of up to
    /// 10 digits need ~12 kB).
    pub max_body_bytes: usize,
    /// Largest uncompressed payload one request may produce (default 256 MiB;
    /// 1024 full 384×384×3 u8 items are 453 MB).
    pub max_response_bytes: usize,
    /// Per-request timeout (default 30 s), including time queued for a
    /// slot; it starts once the body has arrived (see `body_read_timeout`).
    pub request_timeout: Duration,
    /// Requests handled at once; further ones wait (default 64).
    pub max_concurrency: usize,
    /// zstd level for `Accept-Encoding: zstd` (default 3: zstd's default,
    /// fast enough not to be the bottleneck of a 1 Gbit/s link).
    pub zstd_level: i32,
    /// Longest time to receive a request's body (default 10 s; 1024
    /// indices are ~12 kB, 0.1 s even at 1 Mbit/s). Bodies are read
    /// before a request takes a slot, so this, not `request_timeout`, bounds
    /// what a client that stalls its body can hold.
    pub body_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_batch: 1024,
            max_body_bytes: 1 << 20,
            max_response_bytes: 256 << 20,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 64,
            zstd_level: 3,
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Error type of a [`DynamicMasker`].
pub type MaskerError = Box<dyn std::error::Error + Send + Sync>;

/// Computes per-item cell masks on the server (dynamic masks). The main
/// crate implements it with the artifact's mask model (Burn); this crate only
/// calls it, on tokio's blocking pool.
pub trait DynamicMasker: Send + Sync {
    /// The cell mask of one item: `item` is the normalised input, row-major
    /// `[C, H, W]` (`layout.n_values()` values); returns `layout.n_cells()`
    /// booleans, row-major `[c, h, w]`, `true` = send the cell.
    fn cell_mask(&self, item: &[f32], layout: &CellLayout) -> Result<Vec<bool>, MaskerError>;

    /// Cell masks of `n` items stored back to back in `items`. The default
    /// calls [`DynamicMasker::cell_mask`] per item; override it to run the
    /// mask model on the whole batch at once.
    fn cell_masks(&self, items: &[f32], n: usize, layout: &CellLayout) -> Result<Vec<Vec<bool>>, MaskerError> {
        let len = layout.n_values();
        (0..n)
            .map(|k| {
                let item = items
                    .get(k * len..(k + 1) * len)
                    .ok_or("fewer item values than items")?;
                self.cell_mask(item, layout)
            })
            .collect()
    }
}

/// Where a split's items are read from.
#[derive(Debug)]
pub enum SplitSource {
    /// Held in memory.
    Memory(ImageSet),
    /// A Zarr store chunked along the mask cells: only the chunks holding
    /// selected values are read per request.
    Store(StoreSplit),
}

impl SplitSource {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            SplitSource::Memory(s) => s.len(),
            SplitSource::Store(s) => s.len(),
        }
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels in item order.
    pub fn labels(&self) -> &[u16] {
        match self {
            SplitSource::Memory(s) => &s.labels,
            SplitSource::Store(s) => s.labels(),
        }
    }
}

/// A dataset: its splits in memory or in a store.
pub(super) struct ServedDataset {
    pub(super) shape: [usize; 3],
    pub(super) dtype: StoredDtype,
    pub(super) splits: BTreeMap<String, Arc<SplitSource>>,
}

/// How an artifact's items are selected, ready to serve.
#[derive(Clone)]
pub(super) enum ServedMask {
    Static(Arc<StaticPlan>),
    Dynamic {
        layout: Arc<CellLayout>,
        masker: Arc<dyn DynamicMasker>,
        norm: Arc<Normalisation>,
    },
}

/// An artifact, reduced to what serving needs (no network weights).
pub(super) struct ServedArtifact {
    pub(super) listing: ArtifactListing,
    pub(super) mask: ServedMask,
}

/// Everything the server holds: datasets by name, artifacts by id, limits.
pub struct ServerState {
    pub(super) config: ServerConfig,
    pub(super) datasets: BTreeMap<String, ServedDataset>,
    // Shared, so that a request's extractor hands its artifact on.
    pub(super) artifacts: BTreeMap<String, Arc<ServedArtifact>>,
}

fn setup_err(what: &'static str, name: &str, reason: impl Into<String>) -> Error {
    Error::Setup {
        what,
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl ServerState {
    /// An empty state with `config`.
    pub fn new(config: ServerConfig) -> Self {
        ServerState {
            config,
            datasets: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Adds dataset `name` with its splits (e.g. `("test", set)`); all
    /// splits must share one shape and dtype.
    pub fn add_dataset(
        &mut self,
        name: &str,
        splits: impl IntoIterator<Item = (String, ImageSet)>,
    ) -> Result<()> {
        if !is_plain_name(name) {
            return Err(setup_err(
                "dataset",
                name,
                "not a plain name (letters, digits, '.', '_', '-')",
            ));
        }
        if self.datasets.contains_key(name) {
            return Err(setup_err("dataset", name, "already added"));
        }
        let mut served: Option<ServedDataset> = None;
        for (split, set) in splits {
            if !is_plain_name(&split) {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!("split '{split}' is not a plain name"),
                ));
            }
            if set.labels.len() > u32::MAX as usize || set.pixels.len() != set.len() * set.item_len() {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!(
                        "split '{split}' holds {} values for {} items of {:?} (or more than 2^32 items)",
                        set.pixels.len(),
                        set.len(),
                        set.shape
                    ),
                ));
            }
            let dtype = StoredDtype::of(&set.pixels);
            let d = served.get_or_insert_with(|| ServedDataset {
                shape: set.shape,
                dtype,
                splits: BTreeMap::new(),
            });
            if d.shape != set.shape || d.dtype != dtype {
                return Err(setup_err(
                    "dataset",
                    name,
                    format!(
                        "split '{split}' is {:?} {}, others {:?} {}",
                        set.shape,
                        dtype.as_str(),
                        d.shape,
                        d.dtype.as_str()
                    ),
                ));
            }
            if d.splits.insert(split.clone(), Arc::new(SplitSource::Memory(set))).is_some() {
                return Err(setup_err("dataset", name, format!("split '{split}' given twice")));
            }
        }
        let served = served.ok_or_else(|| setup_err("dataset", name, "no split given"))?;
        self.datasets.insert(name.to_string(), served);
        Ok(())
    }

    /// Adds the dataset of the Zarr store at `dir` (written by
    /// [`crate::transfer::store::ingest`]) with all its splits; items are
    /// read from the store per request. Returns the dataset's name.
    pub fn add_store(&mut self, dir: &std::path::Path) -> Result<String> {
        let info = read_store_info(dir)?;
        let name = info.dataset.clone();
        if !is_plain_name(&name) || self.datasets.contains_key(&name) {
            return Err(setup_err("dataset", &name, "not a plain name, or already added"));
        }
        let mut splits = BTreeMap::new();
        for split in &info.splits {
            splits.insert(split.clone(), Arc::new(SplitSource::Store(StoreSplit::open(dir, split)?)));
        }
        self.datasets.insert(name.clone(), ServedDataset { shape: info.shape, dtype: info.dtype, splits });
        Ok(name)
    }

    fn check_artifact(&self, id: &str, artifact: &Artifact) -> Result<()> {
        if !is_plain_name(id) {
            return Err(setup_err(
                "artifact",
                id,
                "id is not a plain name (letters, digits, '.', '_', '-')",
            ));
        }
        if self.artifacts.contains_key(id) {
            return Err(setup_err("artifact", id, "id already in use"));
        }
        let ds = &artifact.manifest.dataset;
        let d = self
            .datasets
            .get(&ds.name)
            .ok_or_else(|| setup_err("artifact", id, format!("its dataset '{}' was not added", ds.name)))?;
        if d.shape != ds.shape || d.dtype != ds.dtype {
            return Err(setup_err(
                "artifact",
                id,
                format!(
                    "made for {:?} {} items, dataset '{}' holds {:?} {}",
                    ds.shape,
                    ds.dtype.as_str(),
                    ds.name,
                    d.shape,
                    d.dtype.as_str()
                ),
            ));
        }
        Ok(())
    }

    fn listing(id: &str, artifact: &Artifact, selected: Option<usize>) -> ArtifactListing {
        let m = &artifact.manifest;
        ArtifactListing {
            id: id.to_string(),
            dataset: m.dataset.name.clone(),
            mask_type: m.mask.kind,
            granularity: m.mask.granularity.map(|g| g.to_string()),
            q: m.mask.q,
            bytes_fraction: m.mask.bytes_fraction,
            selected_values: selected,
            values_per_item: m.dataset.values_per_item(),
            manifest_sha256: artifact.manifest_sha256.clone(),
        }
    }

    /// Serves a static (or mask-less) artifact under `id`.
    pub fn add_artifact(&mut self, id: &str, artifact: &Artifact) -> Result<()> {
        self.check_artifact(id, artifact)?;
        let plan = match Selection::for_artifact(artifact)? {
            Selection::Static(plan) => plan,
            Selection::Dynamic(_) => {
                return Err(setup_err(
                    "artifact",
                    id,
                    "a dynamic artifact needs a mask model: use add_dynamic_artifact",
                ));
            }
        };
        let listing = Self::listing(id, artifact, Some(plan.n_selected()));
        self.artifacts.insert(
            id.to_string(),
            Arc::new(ServedArtifact {
                listing,
                mask: ServedMask::Static(Arc::new(plan)),
            }),
        );
        Ok(())
    }

    /// Serves a dynamic artifact under `id`, computing masks with `masker`.
    pub fn add_dynamic_artifact(
        &mut self,
        id: &str,
        artifact: &Artifact,
        masker: Arc<dyn DynamicMasker>,
    ) -> Result<()> {
        self.check_artifact(id, artifact)?;
        let ArtifactMask::Dynamic { layout, .. } = &artifact.mask else {
            return Err(setup_err("artifact", id, "not a dynamic artifact: use add_artifact"));
        };
        let listing = Self::listing(id, artifact, None);
        self.artifacts.insert(
            id.to_string(),
            Arc::new(ServedArtifact {
                listing,
                mask: ServedMask::Dynamic {
                    layout: Arc::new(layout.clone()),
                    masker,
                    norm: Arc::new(artifact.manifest.dataset.normalisation.clone()),
                },
            }),
        );
        Ok(())
    }

    /// The `GET /v1/datasets` body.
    pub fn listing_body(&self) -> Listing {
        Listing {
            datasets: self
                .datasets
                .iter()
                .map(|(name, d)| DatasetListing {
                    name: name.clone(),
                    shape: d.shape,
                    dtype: d.dtype,
                    splits: d
                        .splits
                        .iter()
                        .map(|(s, set)| SplitListing {
                            name: s.clone(),
                            items: set.len(),
                        })
                        .collect(),
                })
                .collect(),
            artifacts: self.artifacts.values().map(|a| a.listing.clone()).collect(),
            limits: LimitsListing {
                max_batch: self.config.max_batch,
                max_body_bytes: self.config.max_body_bytes,
                max_response_bytes: self.config.max_response_bytes,
                request_timeout_s: self.config.request_timeout.as_secs_f64(),
            },
            wire: WireListing {
                version: codec::WIRE_VERSION,
                content_type: codec::CONTENT_TYPE.to_string(),
                header_bytes: codec::HEADER_BYTES,
                encodings: vec!["zstd".to_string()],
            },
        }
    }
}
