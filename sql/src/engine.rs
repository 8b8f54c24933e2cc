//! How the query engine runs: with a budget, a memory pool of that size shared fairly by the
//! operators that can spill (sorts, aggregations), which spill to the system's temporary
//! directory instead of growing; an operator that cannot spill (a hash join's build side in
//! DataFusion 55) fails with a message naming the largest consumers and the setting to raise.
//! Without one, memory is not limited. Either way the pool records its peak, which the invoice
//! summary prints.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
    UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// How the query engine runs (`[engine]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineOptions {
    /// Bytes the engine's operators may hold before they spill (or, if they cannot, fail);
    /// `None`: no limit. On a cluster this is the client's share only: executors have their
    /// own budgets.
    pub memory_limit: Option<usize>,
    /// Where queries run.
    pub kind: EngineKind,
}

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// In this process (DataFusion).
    #[default]
    Local,
    /// On a Ballista cluster whose scheduler is at this URL (`df://host:50050`).
    Ballista(String),
}

impl EngineKind {
    /// Parses `local` or a scheduler URL (`df://host:port`).
    pub fn parse(s: &str) -> Result<EngineKind, String> {
        match s {
            "local" => Ok(EngineKind::Local),
            u if u.starts_with("df://") => {
                let rest = &u["df://".len()..];
                if rest.is_empty() || rest.starts_with(':') {
                    return Err(format!("engine {u:?} names no host; write df://HOST:50050"));
                }
                Ok(EngineKind::Ballista(u.to_string()))
            }
            other => Err(format!(
                "unknown engine {other:?}: use \"local\" or a Ballista scheduler URL such as df://scheduler:50050"
            )),
        }
    }
}

/// A pool that remembers the most it ever had reserved.
#[derive(Debug)]
pub struct PeakPool {
    inner: Arc<dyn MemoryPool>,
    peak: AtomicUsize,
}

impl PeakPool {
    /// The most bytes reserved at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn note(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl fmt::Display for PeakPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (peak {} bytes)", self.inner, self.peak())
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        "linkmeter"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// The engine's runtime and its pool.
pub fn runtime(o: &EngineOptions) -> datafusion::error::Result<(Arc<RuntimeEnv>, Arc<PeakPool>)> {
    runtime_spilling_to(o, None)
}

/// [`runtime`] with spill files in `dir` (default: the system's temporary directory).
pub fn runtime_spilling_to(
    o: &EngineOptions,
    dir: Option<&std::path::Path>,
) -> datafusion::error::Result<(Arc<RuntimeEnv>, Arc<PeakPool>)> {
    let top = NonZeroUsize::new(3).expect("non-zero");
    let inner: Arc<dyn MemoryPool> = match o.memory_limit {
        Some(limit) => Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), top)),
        None => Arc::new(UnboundedMemoryPool::default()),
    };
    let pool = Arc::new(PeakPool {
        inner,
        peak: AtomicUsize::new(0),
    });
    let mut b = RuntimeEnvBuilder::new().with_memory_pool(pool.clone());
    if let Some(dir) = dir {
        b = b.with_temp_file_path(dir);
    }
    let rt = b.build_arc()?;
    Ok((rt, pool))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    /// A query whose sort holds every row (a window over all of them), so its memory is what
    /// the budget lets it have.
    const SORT_ALL: &str =
        "SELECT SUM(r) FROM (SELECT row_number() OVER (ORDER BY v % 1000, v) AS r \
                            FROM generate_series(1, 2000000) AS t(v))";

    async fn run(limit: usize) -> (String, usize) {
        let dir = tempfile::tempdir().unwrap();
        let wh = linkmeter_warehouse::Warehouse::local(dir.path()).unwrap();
        let cat = Catalog::open_with(
            &wh,
            &EngineOptions {
                memory_limit: Some(limit),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let out = cat.query(SORT_ALL).await.unwrap();
        (crate::pretty(&out), cat.memory_peak())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_join_over_the_budget_fails_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let wh = linkmeter_warehouse::Warehouse::local(dir.path()).unwrap();
        let o = EngineOptions {
            memory_limit: Some(16 << 20),
            ..Default::default()
        };
        let cat = Catalog::open_with(&wh, &o).await.unwrap();
        let e = cat
            .query(
                "SELECT COUNT(*) FROM generate_series(1, 3000000) AS a(v) \
                 JOIN generate_series(1, 3000000) AS b(w) ON v = w",
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("raise memory_limit in [engine]"), "{e}");
        let none = Catalog::open_with(&wh, &EngineOptions::default())
            .await
            .unwrap();
        let out = none
            .query("SELECT COUNT(*) FROM generate_series(1, 3000000) AS a(v) JOIN generate_series(1, 3000000) AS b(w) ON v = w")
            .await
            .unwrap();
        assert!(crate::pretty(&out).contains("3000000"));
        assert!(
            none.memory_peak() > 16 << 20,
            "unlimited, and the peak says what it took"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_budget_spills_and_gets_the_same_answer() {
        let (big, big_peak) = run(1 << 30).await;
        let small_limit = 16 << 20;
        let (small, small_peak) = run(small_limit).await;
        assert_eq!(small, big);
        assert!(big.contains("2000001000000"), "{big}");
        assert!(
            big_peak > small_limit,
            "the query needs more than the small budget: {big_peak}"
        );
        assert!(
            small_peak > 0 && small_peak <= small_limit,
            "held {small_peak} of {small_limit}"
        );
    }

    #[test]
    fn engines_parse_from_their_names() {
        assert_eq!(EngineKind::parse("local"), Ok(EngineKind::Local));
        assert_eq!(
            EngineKind::parse("df://sched:50050"),
            Ok(EngineKind::Ballista("df://sched:50050".into()))
        );
        assert!(EngineKind::parse("df://").unwrap_err().contains("no host"));
        assert!(EngineKind::parse("spark").unwrap_err().contains("df://"));
    }
}
