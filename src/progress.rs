//! Progress of a long ingest: a bar on a terminal, a structured log line every 10 s otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linkmeter_ingest::pipeline::Progress;

/// A running display of an ingest's counters.
pub struct Display {
    counters: Arc<Progress>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Display {
    /// Starts showing the counters the pipeline will update.
    pub fn start() -> Display {
        let counters = Arc::new(Progress::default());
        let done = Arc::new(AtomicBool::new(false));
        let (p, d) = (counters.clone(), done.clone());
        let thread = std::thread::spawn(move || match crate::logging::interactive() {
            true => bar(&p, &d),
            false => log(&p, &d),
        });
        Display {
            counters,
            done,
            thread: Some(thread),
        }
    }

    /// The counters to hand to the pipeline.
    pub fn counters(&self) -> &Progress {
        &self.counters
    }

    /// Stops the display.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Woken, not waited for: a sleeping display cost every run up to 100 ms at exit.
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bar(p: &Progress, done: &AtomicBool) {
    let t0 = Instant::now();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({binary_bytes_per_sec}) {msg}",
        )
        .expect("valid template"),
    );
    while !done.load(Ordering::Relaxed) {
        let recs = p.records.load(Ordering::Relaxed);
        let inputs = p.inputs_done.load(Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64().max(0.001);
        bar.set_length(p.bytes_total.load(Ordering::Relaxed));
        bar.set_position(p.bytes_read.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{inputs}/{} inputs ({:.0}/s), {:.0} records/s",
            p.inputs_total.load(Ordering::Relaxed),
            inputs as f64 / secs,
            recs as f64 / secs
        ));
        std::thread::park_timeout(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn log(p: &Progress, done: &AtomicBool) {
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::park_timeout(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(10) {
            last = Instant::now();
            tracing::info!(
                message = "progress",
                bytes_read = p.bytes_read.load(Ordering::Relaxed),
                bytes_total = p.bytes_total.load(Ordering::Relaxed),
                inputs_done = p.inputs_done.load(Ordering::Relaxed),
                inputs_total = p.inputs_total.load(Ordering::Relaxed),
                records = p.records.load(Ordering::Relaxed)
            );
        }
    }
}
