//! selmask: learn binary selection masks over a network's input, jointly
//! with the network, so that only the selected parts of each input have to
//! cross the wire (Oehmcke & Gieseke, "Input Selection for
//! Bandwidth-Limited Neural Network Inference", SDM 2022).
//!
//! - [`data`]: datasets (IDX, synthetic), splits, batches;
//! - [`masks`]: granularities, the static mask, λ and τ schedules;
//! - [`models`]: prediction networks;
//! - [`kernels`]: fast CPU kernels for Burn's flex backend;
//! - [`training`]: the joint training loop, warm-up, checkpoints, metrics;
//! - [`report`]: tables of accuracy versus Q;
//! - [`tensorboard`]: TensorBoard event files of training runs;
//! - [`cli`], [`commands`], [`bench`]: the `selmask` program.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod data;
pub mod deploy;
pub mod error;
pub mod export;
pub mod kernels;
pub mod masks;
pub mod models;
pub mod report;
pub mod reproduce;
pub mod tensorboard;
pub mod training;
pub mod transfer;
pub mod util;
