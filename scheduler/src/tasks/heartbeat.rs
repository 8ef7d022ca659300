//! A running job's heartbeats, for a Task state's `HeartbeatSeconds`.

/// A running job's heartbeats. Jobs beat as they make progress: the crawl and the conversion
/// after each object, training after each epoch, `sluice:sleep` every `beat_seconds`; the others
/// when they start. A Task state's `HeartbeatSeconds` fails it when none comes for that long.
#[derive(Clone)]
pub struct Heartbeat {
    since: std::time::Instant,
    /// Milliseconds from `since` to the last beat.
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            last: std::sync::Arc::default(),
        }
    }

    pub fn beat(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves once `every` passes without a beat.
    pub(super) async fn lapse(&self, every: std::time::Duration) {
        loop {
            let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
            let quiet = self
                .since
                .elapsed()
                .saturating_sub(std::time::Duration::from_millis(last));
            if quiet >= every {
                return;
            }
            tokio::time::sleep(every - quiet).await;
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}
