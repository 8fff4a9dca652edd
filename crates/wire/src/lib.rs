//! # ui-gateway-wire
//!
//! The wire vocabulary of ui-gateway, shared by the gateway, the change tracker and the Rust backend
//! client: typed ids ([`ids`]) and the browser and backend protocols ([`protocol`]): frame parsing with
//! its limits, messages, priorities, error codes and close codes, and frame encoding. The
//! language-neutral description of the same protocols (documents, JSON Schemas, conformance vectors)
//! lives in the repository's `protocol/` folder; this crate is its Rust implementation.
//!
//! No I/O, no async runtime: everything here is plain data and pure functions.

pub mod ids;
pub mod protocol;
