//! selmask-wire: the half of selmask that needs no deep-learning stack.
//!
//! A storage server and a thin client build from this crate alone, and the
//! compiler keeps it so: Burn is not in its dependency tree. The main crate
//! (training, networks, masks) builds on it; nothing here imports upwards.
//!
//! - [`util`]: atomic writes, owned-directory replacement, plain names;
//! - [`dataset`]: what a dataset is (name, shape, normalisation, stored items);
//! - [`granularity`]: mask granularities and the cell layout they induce;
//! - [`artifact`]: the exported artifact directory (manifest, NPY, safetensors);
//! - [`transfer`]: the wire codec, the storage server, the client, Zarr stores.

pub mod artifact;
pub mod dataset;
pub mod error;
pub mod granularity;
pub mod transfer;
pub mod util;
