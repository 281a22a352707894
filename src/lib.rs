//! selmask: learn binary selection masks over a network's input, jointly
//! with the network, so that only the selected parts of each input have to
//! cross the wire (Oehmcke & Gieseke, "Input Selection for
//! Bandwidth-Limited Neural Network Inference", SDM 2022).
//!
//! This crate is the Burn half; the Burn-free half (dataset types,
//! granularities and cell layouts, the artifact format, the wire codec, the
//! storage server and the client) is the `selmask_wire` crate below it.
//!
//! - [`data`]: dataset loaders (IDX, CIFAR, SVHN, Galaxy10, remote, ships,
//!   synthetic), splits, batches, augmentation;
//! - [`masks`]: the static, dynamic, xor and scheduled masks, λ and τ schedules;
//! - [`models`]: prediction networks;
//! - [`kernels`]: fast CPU kernels for Burn's flex backend;
//! - [`training`]: the joint training loop, warm-up, checkpoints, metrics;
//! - [`deploy`]: checkpoint to artifact, and the networks behind the client
//!   and the server's dynamic masks;
//! - [`report`]: tables and figures of accuracy versus Q;
//! - [`reproduce`]: the paper's experiments as presets;
//! - [`tensorboard`]: TensorBoard event files of training runs;
//! - [`cli`]: the `selmask` program, a room per subcommand (its flags,
//!   their checks and its action), as cargo lays out its commands.

pub mod cli;
pub mod data;
pub mod deploy;
pub mod error;
pub mod kernels;
pub mod masks;
pub mod models;
pub mod report;
pub mod reproduce;
pub mod tensorboard;
pub mod training;
