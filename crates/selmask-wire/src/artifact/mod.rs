//! Exported artifacts: a versioned directory a trained model leaves for the
//! storage server and the client ([`format`]), with its NPY ([`npy`]) and
//! safetensors ([`safetensors`]) files.

pub mod format;
pub mod npy;
pub mod safetensors;

pub use format::{
    Accuracies, Artifact, ArtifactMask, ArtifactSpec, DatasetSection, FileEntry, Manifest, MaskKind, MaskSection,
    MaskSpec, Normalisation, SourceInfo, StoredDtype, read_artifact, write_artifact,
};
pub use safetensors::{F32Tensor, TensorMap};
