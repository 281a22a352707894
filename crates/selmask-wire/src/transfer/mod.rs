//! The transfer path: the wire codec, the storage server, the client and
//! the bandwidth model.
//!
//! The server holds datasets in memory and artifacts read with
//! [`crate::artifact::read_artifact`]; per request it packs only the selected
//! values ([`codec`]); the client ([`client`]) fetches a split in batches,
//! counts the bytes that crossed the wire and hands dense inputs back to the
//! caller, who runs the network. Nothing here depends on Burn: the one piece
//! that needs a network on the server side (dynamic masks) is the
//! [`server::DynamicMasker`] trait, which the main crate implements.

pub mod api;
pub mod bench;
pub mod bandwidth;
pub mod client;
pub mod codec;
pub mod fixtures;
pub mod server;
pub mod store;
