//! The error type of selmask's Burn-free half: files, artifacts, the wire,
//! the server and the client.
//!
//! Messages are lowercase, carry the numbers, shapes and paths that explain
//! what went wrong, and never end with a period, so they read well inside an
//! `anyhow` context chain printed by the binary.

use std::path::PathBuf;

/// Everything that can go wrong in `selmask-wire`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A granularity name that is not known.
    #[error("unknown granularity '{name}'; valid names: {valid}")]
    UnknownGranularity { name: String, valid: String },

    /// A granularity that cannot be applied to this input shape.
    #[error("granularity '{name}' cannot be applied to input [{c}, {h}, {w}]: {reason}")]
    GranularityShape {
        name: String,
        c: usize,
        h: usize,
        w: usize,
        reason: String,
    },

    /// A dataset name that is not known.
    #[error("unknown dataset '{name}'; valid names: {valid}")]
    UnknownDataset { name: String, valid: String },

    /// An output that exists and overwriting was not asked for.
    #[error("{path}: already exists; pass --overwrite to replace this {what}")]
    OutputExists { path: PathBuf, what: &'static str },

    /// An `--overwrite` target that selmask did not write: left untouched.
    #[error("{path}: refusing to replace it: {reason}, so it is not a selmask {what}; it was left untouched")]
    NotOurs { path: PathBuf, what: &'static str, reason: String },

    /// A file the manifest needs is not in the artifact directory.
    #[error("{file}: missing (listed in or required by the manifest)")]
    MissingFile { file: PathBuf },

    /// A file whose SHA-256 differs from the manifest's.
    #[error("{file}: sha-256 mismatch: manifest says {expected}, file has {found}")]
    HashMismatch {
        file: PathBuf,
        expected: String,
        found: String,
    },

    /// A field of an artifact file with a wrong or inconsistent value.
    #[error("{file}: invalid {field}: {reason}")]
    Invalid {
        file: PathBuf,
        field: String,
        reason: String,
    },

    /// What an export was asked to write is inconsistent.
    #[error("cannot export artifact: invalid {field}: {reason}")]
    Spec { field: String, reason: String },

    /// An NPY byte stream that cannot be read (or a shape that cannot be written).
    #[error("{name}: malformed npy: {reason}")]
    Npy { name: String, reason: String },

    /// A safetensors byte stream that cannot be read or written.
    #[error("{name}: malformed safetensors: {reason}")]
    Safetensors { name: String, reason: String },

    /// A wire payload that does not decode (or items that cannot be encoded).
    #[error("malformed payload: {reason}")]
    Payload { reason: String },

    /// A `--bandwidth` value that does not parse.
    #[error("invalid bandwidth '{input}': {reason}")]
    Bandwidth { input: String, reason: String },

    /// A transport-level HTTP failure (connect, timeout, broken body).
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The server answered with an error status.
    #[error("{url}: server answered {status}: {message}")]
    Status { url: String, status: u16, message: String },

    /// The server's view of an artifact or split disagrees with the client's.
    #[error("{url}: {reason}")]
    Mismatch { url: String, reason: String },

    /// A response body larger than its request can need (endless, or a
    /// `Content-Length` that lies): the client stops reading.
    #[error("{url}: response {size}, more than the {limit} bytes of {what}")]
    ResponseTooLarge {
        url: String,
        /// `declares N bytes (content-length)` or `sent at least N bytes`.
        size: String,
        limit: u64,
        /// What the request asked for, e.g. the items and their values.
        what: String,
    },

    /// Server state that cannot be built (duplicate ids, shape mismatch, ...).
    #[error("cannot serve {what} '{name}': {reason}")]
    Setup {
        what: &'static str,
        name: String,
        reason: String,
    },

    /// A benchmark or load test that could not run.
    #[error("benchmark {name}: {reason}")]
    Bench { name: String, reason: String },

    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file that does not parse (or, rarely, a value that cannot be
    /// written as JSON).
    #[error("{path}: invalid json: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Shorthand used throughout this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an [`std::io::Error`] with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A JSON (de)serialisation error on the file at `path`.
    pub fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        Error::Json { path: path.into(), source }
    }

    /// An [`Error::Invalid`] for `field` of `file`.
    pub fn invalid(file: impl Into<PathBuf>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { file: file.into(), field: field.into(), reason: reason.into() }
    }

    /// An [`Error::Spec`] for `field`.
    pub fn spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Spec { field: field.into(), reason: reason.into() }
    }

    /// An [`Error::Payload`].
    pub fn payload(reason: impl Into<String>) -> Self {
        Error::Payload { reason: reason.into() }
    }
}
