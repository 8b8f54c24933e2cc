"""Reads a linkmeter warehouse with engines other than linkmeter's: DuckDB's `delta_scan` and
pyarrow (through the `deltalake` package), and prints, per table, the rows and the sum of a
byte column as each engine sees them (JSON on stdout). Used by tests/e2e to check that the
warehouse opens natively elsewhere and agrees with `linkmeter sql`.

Usage: python delta_readers.py WAREHOUSE TABLE[:BYTE_COLUMN] ...
"""
import glob
import json
import os
import sys

import deltalake
import duckdb
import pyarrow.compute as pc


def duck():
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    # The delta extension ships in the duckdb-ext-delta wheel (DuckDB's own extension site is
    # not reachable from every machine).
    import duckdb_ext
    roots = list(getattr(duckdb_ext, "__path__", []))
    ext = [p for r in roots
           for p in glob.glob(os.path.join(r, "extensions", "*", "*", "delta.duckdb_extension"))]
    con.execute(f"LOAD '{ext[0]}'")
    return con


def main():
    wh = sys.argv[1]
    con = duck()
    out = {}
    for spec in sys.argv[2:]:
        table, _, col = spec.partition(":")
        path = os.path.join(wh, table)
        expr = f"CAST(COALESCE(SUM({col}), 0) AS BIGINT)" if col else "0"
        rows, total = con.execute(
            f"SELECT COUNT(*), {expr} FROM delta_scan('{path}')").fetchone()
        ds = deltalake.DeltaTable(path).to_pyarrow_dataset()
        t = ds.to_table(columns=[col] if col else [])
        pa_total = int(pc.sum(t.column(col)).as_py() or 0) if col else 0
        out[table] = {"duckdb": [rows, total], "pyarrow": [t.num_rows, pa_total]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
