//! `CREATE` statements that open the warehouse in Athena, Trino and Spark (`linkmeter ddl`).
//!
//! Every warehouse table is a Delta Lake table, so each engine reads its columns and partitions
//! from the Delta log: Athena with `TBLPROPERTIES ('table_type' = 'DELTA')`, Trino's Delta Lake
//! connector by `register_table`, Spark `USING DELTA`. No column list is repeated (it could
//! only drift from the log) and no partition needs registering (`MSCK REPAIR` or partition
//! projection are for plain Hive tables, which the warehouse has none of).
//!
//! The views of `sql/views/` follow, rewritten where a dialect spells something differently:
//! timestamp and interval literals, `VARCHAR` (Spark: `STRING`), `median` (Athena and Trino
//! have only `approx_percentile`), and names qualified with the database, since a view's
//! unqualified names would resolve against whatever database its reader has selected.

use linkmeter_warehouse::registry::TABLES;

use crate::{render, ALL_TIME, VIEWS};

/// An engine to write DDL for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Amazon Athena (engine version 3) with the AWS Glue catalog.
    Athena,
    /// Trino's Delta Lake connector.
    Trino,
    /// Apache Spark with Delta Lake (`delta-spark`).
    Spark,
}

impl Dialect {
    /// Parses `athena`, `trino` or `spark`.
    pub fn parse(s: &str) -> Result<Dialect, String> {
        match s {
            "athena" => Ok(Dialect::Athena),
            "trino" => Ok(Dialect::Trino),
            "spark" => Ok(Dialect::Spark),
            other => Err(format!(
                "unknown dialect {other:?}: use athena, trino or spark"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Athena => "athena",
            Dialect::Trino => "trino",
            Dialect::Spark => "spark",
        }
    }
}

/// What the DDL is for.
#[derive(Debug, Clone)]
pub struct DdlOptions {
    /// The engine.
    pub dialect: Dialect,
    /// The warehouse's URL (`s3://bucket/prefix`), without a trailing `/`.
    pub location: String,
    /// The database (Athena, Spark) or schema (Trino) to create the tables in.
    pub database: String,
    /// Trino's catalog of the Delta Lake connector.
    pub catalog: String,
}

/// The whole script: database, tables, views.
pub fn ddl(o: &DdlOptions) -> String {
    let loc = o.location.trim_end_matches('/');
    let db = match o.dialect {
        Dialect::Trino => format!("{}.{}", o.catalog, o.database),
        _ => o.database.clone(),
    };
    let mut out = String::new();
    out.push_str(&format!(
        "-- The linkmeter warehouse at {loc}: {} Delta Lake tables and {} views, for {}.\n\
         -- Written by `linkmeter ddl --dialect {}`; rerun it after upgrading linkmeter (new columns\n\
         -- appear by themselves: they are read from the Delta log).\n\
         -- Each table reads its latest Delta version. While `linkmeter ingest` runs (or after one\n\
         -- was killed, until the next run), flows, flow_hours, coverage, broker_metrics, broker_hours\n\
         -- and quarantine may hold rows of a segment not yet in `inputs`; `linkmeter sql` leaves\n\
         -- those out. Query between runs for numbers that match the invoice.\n",
        TABLES.len(),
        VIEWS.len(),
        match o.dialect {
            Dialect::Athena => "Amazon Athena (engine version 3, AWS Glue catalog)",
            Dialect::Trino => "Trino's Delta Lake connector",
            Dialect::Spark => "Apache Spark with Delta Lake (on open-source Spark write s3a:// locations)",
        },
        o.dialect.name(),
    ));
    match o.dialect {
        Dialect::Athena | Dialect::Spark => {
            if o.dialect == Dialect::Spark {
                out.push_str(
                    "-- The views take months from the timestamps' text: run with\n\
                     -- spark.sql.session.timeZone=UTC.\n",
                );
            }
            out.push_str(&format!("\nCREATE DATABASE IF NOT EXISTS {db};\n"));
        }
        Dialect::Trino => out.push_str(&format!(
            "-- register_table needs delta.register-table-procedure.enabled=true in the catalog.\n\
             \nCREATE SCHEMA IF NOT EXISTS {db};\n"
        )),
    }
    for t in TABLES {
        out.push_str(&format!("\n-- {}: {}\n", t.name, t.about));
        let at = format!("{loc}/{}", t.name);
        out.push_str(&match o.dialect {
            Dialect::Athena => format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{}\nLOCATION '{at}/'\nTBLPROPERTIES ('table_type' = 'DELTA');\n",
                t.name
            ),
            Dialect::Trino => format!(
                "CALL {}.system.register_table(schema_name => '{}', table_name => '{}', table_location => '{at}');\n",
                o.catalog, o.database, t.name
            ),
            Dialect::Spark => format!(
                "CREATE TABLE IF NOT EXISTS {db}.{}\nUSING DELTA\nLOCATION '{at}';\n",
                t.name
            ),
        });
    }
    for (name, sql, _) in VIEWS {
        let body = portable(&render(sql, ALL_TIME.0, ALL_TIME.1), o.dialect, &db);
        out.push_str(&format!(
            "\n-- {name}: {}\nCREATE OR REPLACE VIEW {db}.{name} AS\n{body};\n",
            crate::VIEW_ABOUT
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, a)| a)
        ));
    }
    out
}

/// A view's SQL in `dialect`, its tables and views qualified with `db`.
pub fn portable(sql: &str, dialect: Dialect, db: &str) -> String {
    let sql = strip_comments(sql);
    let mut out = String::with_capacity(sql.len());
    let toks = tokens(&sql);
    // CTE names: a word followed by `AS (`.
    let words: Vec<&str> = toks
        .iter()
        .copied()
        .filter(|t| !t.trim().is_empty())
        .collect();
    let ctes: Vec<&str> = words
        .windows(3)
        .filter(|w| w[1].eq_ignore_ascii_case("AS") && w[2] == "(")
        .map(|w| w[0])
        .collect();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        let upper = t.to_ascii_uppercase();
        let next = |k: usize| toks.get(i + k).copied().unwrap_or("");
        match upper.as_str() {
            // TIMESTAMP '2026-10-01T00:00:00Z' → TIMESTAMP '2026-10-01 00:00:00 UTC'
            "TIMESTAMP" if next(1) == " " && next(2).starts_with('\'') => {
                out.push_str("TIMESTAMP ");
                out.push_str(&timestamp(next(2), dialect));
                i += 3;
                continue;
            }
            // INTERVAL '15 minutes' → INTERVAL '15' MINUTE
            "INTERVAL" if next(1) == " " && next(2).starts_with('\'') => {
                out.push_str("INTERVAL ");
                out.push_str(&interval(next(2)));
                i += 3;
                continue;
            }
            "VARCHAR" if dialect == Dialect::Spark => {
                out.push_str("STRING");
                i += 1;
                continue;
            }
            // median(x) → approx_percentile(x, 0.5) (Athena, Trino) or percentile(x, 0.5)
            "MEDIAN" if next(1) == "(" => {
                let close = matching(&toks, i + 1);
                if let Some(close) = close {
                    let arg: String = toks[i + 2..close].concat();
                    let f = match dialect {
                        Dialect::Spark => "percentile",
                        _ => "approx_percentile",
                    };
                    out.push_str(&format!("{f}({arg}, 0.5)"));
                    i = close + 1;
                    continue;
                }
            }
            "FROM" | "JOIN" => {
                out.push_str(t);
                // FROM <space> name: qualify names of the warehouse's tables and views (not
                // a CTE of the same name, which the query defines itself).
                if next(1).trim().is_empty() && is_relation(next(2)) && !ctes.contains(&next(2)) {
                    out.push_str(next(1));
                    out.push_str(&format!("{db}.{}", next(2)));
                    i += 3;
                    continue;
                }
            }
            _ => out.push_str(t),
        }
        i += 1;
    }
    // Lines the comments left empty.
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index of the `)` that closes the `(` at `open`.
fn matching(toks: &[&str], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match *t {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_relation(name: &str) -> bool {
    TABLES.iter().any(|t| t.name == name) || VIEWS.iter().any(|(v, _, _)| *v == name)
}

fn timestamp(lit: &str, dialect: Dialect) -> String {
    let inner = lit.trim_matches('\'');
    match inner.strip_suffix('Z').and_then(|s| s.split_once('T')) {
        Some((d, t)) if dialect != Dialect::Spark => format!("'{d} {t} UTC'"),
        Some((d, t)) => format!("'{d} {t}+00:00'"),
        None => lit.to_string(),
    }
}

fn interval(lit: &str) -> String {
    let inner = lit.trim_matches('\'');
    let Some((n, unit)) = inner.split_once(' ') else {
        return lit.to_string();
    };
    let unit = unit.trim_end_matches('s').to_ascii_uppercase();
    format!("'{n}' {unit}")
}

/// The SQL without `--` comments (quotes in them would confuse the tokens).
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted && c == '-' && chars.peek() == Some(&'-') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Words, quoted strings, runs of whitespace and single other characters, in order: the
/// rewrite looks at neighbours without ever touching what is inside a string literal.
fn tokens(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let s = i;
        let c = b[i];
        if c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
        } else if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
        } else {
            // One character (a multi-byte one whole).
            i += sql[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push(&sql[s..i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_functions_are_spelled_per_dialect() {
        let sql = "SELECT median(ratio), CAST(x AS VARCHAR) -- it's a comment\n\
                   FROM flows f JOIN hours h ON 1 = 1 \
                   WHERE t >= TIMESTAMP '2026-10-01T00:00:00Z' - INTERVAL '15 minutes' \
                   AND s = 'FROM flows'";
        let trino = portable(sql, Dialect::Trino, "delta.lm");
        assert_eq!(
            trino,
            "SELECT approx_percentile(ratio, 0.5), CAST(x AS VARCHAR) \n\
             FROM delta.lm.flows f JOIN hours h ON 1 = 1 \
             WHERE t >= TIMESTAMP '2026-10-01 00:00:00 UTC' - INTERVAL '15' MINUTE \
             AND s = 'FROM flows'"
        );
        let spark = portable(sql, Dialect::Spark, "lm");
        assert!(spark.contains("percentile(ratio, 0.5)"), "{spark}");
        assert!(spark.contains("CAST(x AS STRING)"), "{spark}");
        assert!(
            spark.contains("TIMESTAMP '2026-10-01 00:00:00+00:00'"),
            "{spark}"
        );
        assert!(spark.contains("FROM lm.flows f"), "{spark}");
        assert!(!spark.contains("comment"), "{spark}");
    }

    #[test]
    fn nested_calls_and_ctes_named_like_tables_are_left_whole() {
        let sql =
            "WITH flows AS (SELECT 1 AS x) SELECT median(abs(x)) FROM flows JOIN runs r ON true";
        let out = portable(sql, Dialect::Trino, "db");
        assert!(out.contains("approx_percentile(abs(x), 0.5)"), "{out}");
        assert!(out.contains("FROM flows JOIN db.runs r"), "{out}");
    }

    #[test]
    fn every_table_and_view_is_created() {
        for dialect in [Dialect::Athena, Dialect::Trino, Dialect::Spark] {
            let out = ddl(&DdlOptions {
                dialect,
                location: "s3://b/wh/".into(),
                database: "linkmeter".into(),
                catalog: "delta".into(),
            });
            for t in TABLES {
                assert!(out.contains(&format!("s3://b/wh/{}", t.name)), "{}", t.name);
            }
            for (v, _, _) in VIEWS {
                assert!(
                    out.contains(&format!(
                        "VIEW {}",
                        if dialect == Dialect::Trino {
                            "delta.linkmeter"
                        } else {
                            "linkmeter"
                        }
                    )) && out.contains(&format!(".{v} AS")),
                    "{v}"
                );
            }
            assert!(!out.contains("${"), "every placeholder is rendered");
            assert!(!out.contains("median("), "no dialect here has median");
        }
    }
}
