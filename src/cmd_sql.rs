//! `linkmeter sql`: SQL over the warehouse, one-shot (`linkmeter sql "SELECT …"`, `-f file`)
//! or interactive (history, multi-line statements ending in `;`, `\d` to list and describe).
//! Every table and the views for common questions are registered; output as an aligned
//! table, CSV, JSON lines or Parquet. Read-only unless `--write` says otherwise.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::RecordBatch;
use linkmeter_sql::Catalog;

use crate::config::Config;
use crate::Exit;

/// Output formats.
#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum OutFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
    /// Parquet (needs --output).
    Parquet,
}

/// Arguments of `sql`.
#[derive(clap::Args)]
#[command(
    after_help = "Tables: flows, coverage, broker_metrics, quarantine, runs, inputs, the hourly sums flow_hours and\nbroker_hours (what the month close reads), accounts, clusters, cluster_connectivity, connections,\nendpoint_enis, and after `invoice` usage_hourly, endpoint_hours,\nconnectivity_hours, invoice_lines. Views: billable_flows (observation-point rule applied),\nbillable_hours (the same over flow_hours), reconciliation, account_usage, endpoint_usage, unattributed_by_reason.\n\nExamples:\n  linkmeter sql --warehouse linkmeter-demo/warehouse \"SELECT * FROM runs\"\n  linkmeter sql -w wh \"SELECT account_name, SUM(gib) FROM account_usage GROUP BY 1 ORDER BY 2 DESC\"\n  linkmeter sql -w wh -f query.sql --format csv > out.csv\n  linkmeter sql -w wh --format parquet --output top.parquet \"SELECT * FROM account_usage\"\n  linkmeter sql -w wh                        # interactive: \\d lists tables, \\d NAME describes one, \\q quits\n  linkmeter sql -w s3://bucket/warehouse \"SELECT COUNT(*) FROM flows\"   # [s3] settings from linkmeter.toml or LINKMETER_S3_*\n  linkmeter sql --engine df://scheduler:50050 \"SELECT * FROM account_usage\"   # on a Ballista cluster (build with --features ballista)\n\nRead-only: only SELECT, WITH, EXPLAIN, SHOW, DESCRIBE and VALUES run unless --write is given\n(which allows COPY … TO, CREATE VIEW and the like; the warehouse's own tables are never changed by it)."
)]
pub struct Args {
    /// The SQL to run (or use --file; none and a terminal: interactive).
    pub query: Option<String>,
    /// Read the SQL from a file (`-` for standard input); statements end with `;`.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Warehouse directory or s3://bucket/prefix (default: from the config).
    #[arg(long, short, env = "LINKMETER_WAREHOUSE")]
    pub warehouse: Option<String>,
    /// Configuration file, used when --warehouse is not given.
    #[command(flatten)]
    pub config: crate::config::ConfigArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutFormat,
    /// Write the result to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Allow statements other than queries (COPY … TO, CREATE VIEW …).
    #[arg(long)]
    pub write: bool,
    /// Where the queries run: `local`, or a Ballista scheduler `df://HOST:50050` (default:
    /// the config's [engine]).
    #[arg(long, env = "LINKMETER_ENGINE", value_parser = linkmeter_sql::EngineKind::parse)]
    pub engine: Option<linkmeter_sql::EngineKind>,
}

/// Splits a script into statements at `;` outside quotes and comments.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            (None, ';') => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Whether a statement only reads.
fn read_only(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches('(')
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "WITH" | "EXPLAIN" | "SHOW" | "DESCRIBE" | "DESC" | "VALUES"
    )
}

/// Renders a result in a text format.
fn render(batches: &[RecordBatch], format: OutFormat) -> Result<Vec<u8>> {
    Ok(match format {
        OutFormat::Table => format!("{}\n", linkmeter_sql::pretty(batches)).into_bytes(),
        OutFormat::Csv => linkmeter_sql::csv(batches)?.into_bytes(),
        OutFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            w.into_inner()
        }
        OutFormat::Parquet => bail!("Parquet is written to a file: add --output FILE.parquet"),
    })
}

fn write_parquet(batches: &[RecordBatch], path: &PathBuf) -> Result<()> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| anyhow!("the query returned no schema to write"))?;
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

struct Session {
    place: String,
    cat: Catalog,
    rt: tokio::runtime::Handle,
    format: OutFormat,
    output: Option<PathBuf>,
    write: bool,
}

impl Session {
    fn run(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        if !self.write {
            if !read_only(sql) {
                bail!("linkmeter sql is read-only: only SELECT, WITH, EXPLAIN, SHOW, DESCRIBE and VALUES run; add --write to run this statement");
            }
            // The first word is a hint; DataFusion's own check also covers EXPLAIN ANALYZE.
            return Ok(self.rt.block_on(self.cat.query_read_only(sql))?);
        }
        // Even with --write, the warehouse's own files are not SQL's to change: no INSERT,
        // and no COPY into the warehouse.
        let upper = sql.to_ascii_uppercase();
        if upper.contains("INSERT") && upper.contains("INTO") {
            bail!("INSERT would add rows to the warehouse's tables behind ingest's back; use COPY (…) TO a file outside the warehouse");
        }
        if upper.trim_start().starts_with("COPY") {
            let root = self.cat.root().trim_end_matches('/');
            let abs = std::fs::canonicalize(root).map(|p| p.display().to_string());
            let targets = sql.split('\'').skip(1).step_by(2);
            for t in targets {
                let t_abs = std::path::Path::new(t)
                    .parent()
                    .and_then(|p| {
                        std::fs::canonicalize(if p.as_os_str().is_empty() {
                            std::path::Path::new(".")
                        } else {
                            p
                        })
                        .ok()
                    })
                    .map(|p| p.display().to_string());
                let inside = t.starts_with(root)
                    || matches!((&abs, &t_abs), (Ok(a), Some(b)) if b.starts_with(a.as_str()));
                if inside {
                    bail!(
                        "COPY must not write into the warehouse ({root}); write the file elsewhere"
                    );
                }
            }
        }
        Ok(self.rt.block_on(self.cat.query(sql))?)
    }

    fn emit(&self, batches: &[RecordBatch]) -> Result<()> {
        if let Some(path) = &self.output {
            return match self.format {
                OutFormat::Parquet => write_parquet(batches, path),
                f => std::fs::write(path, render(batches, f)?)
                    .with_context(|| format!("cannot write {}", path.display())),
            };
        }
        if self.format == OutFormat::Parquet {
            bail!("Parquet is written to a file: add --output FILE.parquet");
        }
        // Output is often piped into `head`: a closed pipe ends the output, it is not an error.
        match std::io::stdout()
            .lock()
            .write_all(&render(batches, self.format)?)
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("writing the result")
            }
            _ => Ok(()),
        }
    }

    /// `\d`: tables and views with what they hold; `\d NAME`: its columns.
    fn describe(&self, name: Option<&str>) -> Result<String> {
        let mut out = String::new();
        match name {
            None => {
                for t in linkmeter_warehouse::registry::TABLES
                    .iter()
                    .filter(|t| self.cat.tables.contains(&t.name))
                {
                    out.push_str(&format!("  table {:<24} {}\n", t.name, t.about));
                }
                for v in &self.cat.views {
                    let about = linkmeter_sql::VIEW_ABOUT
                        .iter()
                        .find(|(n, _)| n == v)
                        .map(|(_, a)| *a)
                        .unwrap_or("");
                    out.push_str(&format!("  view  {v:<24} {about}\n"));
                }
            }
            Some(n) => {
                let b = self.rt.block_on(self.cat.query(&format!(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
                    n.replace('\'', "''")
                )))?;
                if b.iter().map(|b| b.num_rows()).sum::<usize>() == 0 {
                    bail!("no table or view named {n:?}; \\d lists them");
                }
                out = format!("{}\n", linkmeter_sql::pretty(&b));
            }
        }
        Ok(out)
    }
}

/// The interactive loop: statements end with `;`; backslash commands stand alone.
fn interactive(s: &Session) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".linkmeter_sql_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    eprintln!(
        "linkmeter sql on {} — {} tables, {} views. End statements with ;  \\d lists, \\d NAME describes, \\q quits.",
        s.place,
        s.cat.tables.len(),
        s.cat.views.len()
    );
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() {
            "linkmeter> "
        } else {
            "      ...> "
        };
        let line = match rl.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                buf.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let t = line.trim();
        if buf.is_empty() && t.starts_with('\\') {
            let _ = rl.add_history_entry(t);
            let mut words = t.split_whitespace();
            match words.next() {
                Some("\\q") => break,
                Some("\\d") => match s.describe(words.next()) {
                    Ok(text) => print!("{text}"),
                    Err(e) => eprintln!("{e:#}"),
                },
                _ => eprintln!("unknown command {t}: \\d [NAME] describes, \\q quits"),
            }
            continue;
        }
        buf.push_str(&line);
        buf.push('\n');
        if !t.ends_with(';') {
            continue;
        }
        let _ = rl.add_history_entry(buf.trim());
        for stmt in statements(&buf) {
            match s.run(&stmt).and_then(|b| s.emit(&b)) {
                Ok(()) => {}
                Err(e) => eprintln!("{e:#}"),
            }
        }
        buf.clear();
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// Runs `sql`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let script = match (&a.query, &a.file) {
        (Some(q), None) => Some(q.clone()),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t)?;
            Some(t)
        }
        (None, Some(f)) => Some(
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        ),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut t = String::new();
            std::io::stdin().read_to_string(&mut t)?;
            Some(t)
        }
        (None, None) => None,
        _ => bail!("give either a query or --file (not both); see `linkmeter sql --help`"),
    };
    let config = &a.config.config;
    let cfg = match &a.warehouse {
        // The config still supplies [s3] settings when there is one.
        // A config that is there but broken is said, not skipped (its [s3] and [engine]
        // settings would be silently lost).
        Some(w) if config.exists() => {
            let mut c = Config::load(config)?;
            c.warehouse = w.clone();
            c
        }
        Some(w) => Config::bare(w)?,
        None => Config::load(config).context("no --warehouse given, so the config was needed")?,
    };
    // Reading never creates a local warehouse directory.
    let wh = crate::warehouse::open_existing(&cfg, rt)?;
    let mut engine = cfg.engine.options();
    if let Some(kind) = &a.engine {
        engine.kind = kind.clone();
    }
    let cat = rt.block_on(Catalog::open_with(&wh, &engine))?;
    for t in &cat.stale {
        eprintln!("note: {t} does not match the files it sums yet (a warehouse from before it, or a run cut short); billable_hours, reconciliation, account_usage and endpoint_usage may be incomplete until the next `linkmeter ingest`, `run` or `invoice` (without --shard) rebuilds it");
    }
    let s = Session {
        place: wh.display(),
        cat,
        rt: rt.clone(),
        format: a.format,
        output: a.output.clone(),
        write: a.write,
    };
    let Some(script) = script else {
        interactive(&s)?;
        return Ok(Exit::Ok);
    };
    let stmts = statements(&script);
    if stmts.is_empty() {
        bail!("no SQL statement given");
    }
    // The last statement's result is the output (earlier ones may create views with --write).
    let mut last = Vec::new();
    for stmt in &stmts {
        last = s.run(stmt)?;
    }
    s.emit(&last)?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            statements("SELECT 'a;b'; -- c;d\nSELECT \"x;y\" FROM t;\n\n"),
            vec!["SELECT 'a;b'", "SELECT \"x;y\" FROM t"]
        );
        assert_eq!(statements("SELECT 1"), vec!["SELECT 1"]);
        assert!(read_only("  with x as (select 1) select * from x"));
        assert!(read_only("(SELECT 1)"));
        assert!(!read_only("COPY (SELECT 1) TO 'x.csv'"));
        assert!(!read_only("CREATE VIEW v AS SELECT 1"));
    }
}
