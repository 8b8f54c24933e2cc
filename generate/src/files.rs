//! Flow-log files laid out like AWS's S3 delivery (`AWSLogs/ACCOUNT/vpcflowlogs/REGION/Y/M/D/`),
//! one gzip file per account and hour, written on a thread of their own.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::records::{account_id, custom_format, CUSTOM_HEADER, V2_HEADER};
use crate::rng::Rng;
use crate::GenSummary;

/// One line to write into an account's hourly file.
pub(crate) struct Line {
    pub(crate) end: i64,
    pub(crate) text: String,
}

/// One account's hourly flow-log file, handed to the writer thread.
pub(crate) struct FileJob {
    hour: i64,
    account: usize,
    lines: Vec<Line>,
}

/// Hands finished files to the writer thread, counting them.
fn queue_files(
    tx: &std::sync::mpsc::SyncSender<FileJob>,
    files: BTreeMap<(i64, usize), Vec<Line>>,
    sum: &mut GenSummary,
) -> std::io::Result<()> {
    for ((hour, account), lines) in files {
        sum.files += 1;
        sum.lines += lines.len() as u64;
        tx.send(FileJob {
            hour,
            account,
            lines,
        })
        .map_err(|_| std::io::Error::other("the flow-log writer thread stopped"))?;
    }
    Ok(())
}

/// Writes one hourly file the way AWS lays out S3 delivery, gzipped, lines in end-time order.
fn write_file(root: &Path, region: &str, names: &mut Rng, job: FileJob) -> std::io::Result<()> {
    let FileJob {
        hour,
        account: a,
        mut lines,
    } = job;
    lines.sort_by_key(|l| l.end);
    let t = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
    let acct = account_id(a);
    let sub = root.join(format!(
        "AWSLogs/{acct}/vpcflowlogs/{region}/{}",
        t.format("%Y/%m/%d")
    ));
    std::fs::create_dir_all(&sub)?;
    let name = format!(
        "{acct}_vpcflowlogs_{region}_fl-{:017x}_{}_{}.log.gz",
        a as u64 * 7 + 0xabc,
        t.format("%Y%m%dT%H%MZ"),
        names.hex(8)
    );
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(sub.join(name))?),
        flate2::Compression::default(),
    );
    gz.write_all(
        if custom_format(a) {
            CUSTOM_HEADER
        } else {
            V2_HEADER
        }
        .as_bytes(),
    )?;
    gz.write_all(b"\n")?;
    for l in &lines {
        gz.write_all(l.text.as_bytes())?;
        gz.write_all(b"\n")?;
    }
    gz.finish()?.flush()
}

/// The thread that gzips and writes finished files while traffic is generated.
pub(crate) struct Writer {
    tx: std::sync::mpsc::SyncSender<FileJob>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Writer {
    /// Starts writing under `root` (file names draw from a generator of their own).
    pub(crate) fn start(root: &Path, region: &str, seed: u64) -> Writer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(4);
        let (root, region) = (root.to_path_buf(), region.to_string());
        let mut names = Rng(seed ^ 0x6e61_6d65_7321);
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            for job in rx {
                write_file(&root, &region, &mut names, job)?;
            }
            Ok(())
        });
        Writer { tx, thread }
    }

    /// Hands finished files over, counting them.
    pub(crate) fn queue(
        &self,
        files: BTreeMap<(i64, usize), Vec<Line>>,
        sum: &mut GenSummary,
    ) -> std::io::Result<()> {
        queue_files(&self.tx, files, sum)
    }

    /// Waits for every file to be written.
    pub(crate) fn finish(self) -> std::io::Result<()> {
        drop(self.tx);
        self.thread
            .join()
            .map_err(|_| std::io::Error::other("the flow-log writer thread panicked"))?
    }
}
