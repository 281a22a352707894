//! The integration tests: one binary, shared fixtures in `it/fixtures.rs`.

#[path = "it/fixtures.rs"]
mod fixtures;

#[path = "it/dynamic.rs"]
mod dynamic;
#[path = "it/data.rs"]
mod data;
#[path = "it/datasets.rs"]
mod datasets;
#[path = "it/golden.rs"]
mod golden;
#[path = "it/granularity.rs"]
mod granularity;
#[path = "it/kernels.rs"]
mod kernels;
#[path = "it/layers.rs"]
mod layers;
#[path = "it/masks.rs"]
mod masks;
#[path = "it/optim.rs"]
mod optim;
#[path = "it/training.rs"]
mod training;
#[path = "it/deploy.rs"]
mod deploy;
#[path = "it/server.rs"]
mod server;
#[path = "it/hostile_server.rs"]
mod hostile_server;
#[path = "it/report.rs"]
mod report;
#[path = "it/budget.rs"]
mod budget;
#[path = "it/xor.rs"]
mod xor;
#[path = "it/hostile.rs"]
mod hostile;
#[path = "it/resume.rs"]
mod resume;
#[path = "it/same_outputs.rs"]
mod same_outputs;
#[path = "it/tensorboard.rs"]
mod tensorboard;
