//! ui-gateway (work in progress)
pub mod ids;
pub mod protocol;
pub mod tracker;
