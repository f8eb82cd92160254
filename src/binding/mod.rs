//! N-API glue: converts JavaScript values to core types and back, and runs
//! core futures on the addon's tokio runtime. No Kafka logic lives here.

pub mod consumer;
pub mod deliveries;
pub mod events;
pub mod handoff;
pub mod js;
pub mod logger;
pub mod metrics;
pub mod producer;
pub mod transaction;
pub mod wake_queue;

/// Configures the addon once per process: one tokio runtime shared by every
/// client (sized for I/O-bound work; blocking librdkafka calls go to its
/// blocking pool), and the log router.
#[napi_derive::module_init]
fn init() {
    let workers = std::thread::available_parallelism().map_or(2, |count| count.get().clamp(2, 4));
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("kafka-napi")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
    crate::core::logging::install();
}
