//! The pure Rust core: configuration, clients, events and errors. Nothing in
//! here knows about N-API; `crate::binding` converts and calls.

pub mod config;
pub mod consumer;
pub mod context;
pub mod delivery;
pub mod embedded;
pub mod encoded;
pub mod error;
pub mod events;
#[cfg(test)]
mod fault_tests;
pub mod logging;
pub mod metrics;
mod polled_producer;
pub mod producer;
pub mod schema;
pub mod trace;
pub mod transaction;
mod wakeup;
