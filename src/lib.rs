//! Kafka for Node.js: a pure Rust core over librdkafka (`core`) and the thin
//! N-API glue that exposes it to JavaScript (`binding`).

// A panic must never cross into Node: outside tests, fallible paths return
// errors, and the N-API entry points also catch unwinding as a last resort.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod core;

// The glue references N-API symbols that only a Node process provides, so it
// is left out of `cargo test` binaries and of pure-Rust builds.
#[cfg(all(feature = "node", not(test)))]
pub mod binding;
