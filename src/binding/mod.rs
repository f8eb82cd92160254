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

/// The benchmark's N-API floor, built only for `scripts/bench.sh`.
#[cfg(feature = "bench-floor")]
#[path = "../../bench/floor/floor.rs"]
pub mod floor;

/// Rust allocations of the addon (not Node's or librdkafka's). A consumed
/// message is allocated on the poll thread and freed on a tokio worker or
/// the JavaScript thread; glibc's malloc takes the allocating thread's arena
/// lock for each such free, and mimalloc does not. Consuming 1M messages (4
/// interleaved pairs): the process's CPU per message 3.40 -> 2.76 us in
/// batches and 4.46 -> 3.98 us per message. Built without transparent huge
/// pages (`no_thp`): with them, ten consumer groups took 161 MB instead of
/// 121 MB (`bench/README.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
