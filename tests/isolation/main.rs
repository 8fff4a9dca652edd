//! Isolation (issue 13): no script, input or client can stall the gateway. Each test starts the real
//! server, drives one hostile input from the security review, asserts its typed outcome, and checks
//! that meanwhile `/healthz` and another session keep answering.
//!
//! One test binary, one module per concern, so the whole group links the crate once.

mod admission;
mod bytes;
#[path = "../common/mod.rs"]
mod common;
mod lua;
mod patterns;
