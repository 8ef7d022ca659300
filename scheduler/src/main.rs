//! `sluice`: parse, run, print. Errors end the process with one line naming what failed.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// DeepAR's training allocates and frees many tensors every step. Under glibc's allocator,
/// malloc/free and the zeroing of freshly mapped pages were about a quarter of training time
/// (perf, aus_retail); mimalloc cut training CPU by 13% there (10.4 → 9.0 s a seed, 6 runs
/// each), with identical results. It is built without transparent huge pages (the workspace's
/// `no_thp` feature): with them, every thread's heap faulted in 2 MiB pages, and the demo's
/// many async and blocking threads took its peak RSS to 620-670 MB (270-290 MB without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// candle sizes its CPU parallelism from `RAYON_NUM_THREADS` on every matrix product and,
/// without it, parses /proc/cpuinfo each time: a third of DeepAR's training time. DeepAR's
/// products are small, one thread is fastest for them (two made a one-series forecast 70%
/// slower here), and parallelism comes from running several jobs or requests at once.
#[allow(unsafe_code)]
fn pin_tensor_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the first statement of `main`, before the runtime or any other thread exists,
        // so nothing reads the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn main() -> ExitCode {
    pin_tensor_threads();
    let cli = scheduler::cli::Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info,sluice=debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(scheduler::run(&cli)) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`sluice ... | head`) is not a failure of the command.
            let _ = writeln!(stdout, "{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            let message = format!("{err:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::FAILURE
        }
    }
}
