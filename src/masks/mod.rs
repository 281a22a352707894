//! Selection masks: granularity, static masks, Q and schedules.

pub mod granularity;
pub mod static_mask;
pub mod schedule;
