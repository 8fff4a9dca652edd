//! ui-gateway (work in progress)
pub mod config;
pub mod ids;
pub mod lua;
pub mod protocol;
pub mod session;
pub mod site;
pub mod tracker;
