//! `sluice`: parse, run, print. Errors end the process with one line naming what failed.

use std::process::ExitCode;

use clap::Parser;

/// DeepAR's training allocates and frees many tensors every step. Under glibc's allocator,
/// malloc/free and the zeroing of freshly mapped pages were about a quarter of training time
/// (perf, aus_retail); mimalloc cut training CPU by 13% there (10.4 → 9.0 s a seed, 6 runs
/// each), with identical results. It is built without transparent huge pages (the workspace's
/// `no_thp` feature): with them, every thread's heap faulted in 2 MiB pages, and the demo's
/// many async and blocking threads took its peak RSS to 620-670 MB (270-290 MB without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    scheduler::pin_tensor_threads();
    jobs::install_tls();
    let cli = scheduler::cli::Cli::parse();
    scheduler::init_tracing(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    scheduler::finish(runtime.block_on(scheduler::run(&cli)))
}
