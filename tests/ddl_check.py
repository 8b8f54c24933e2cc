"""Parses every statement of a `linkmeter ddl` script with sqlglot in the engine's dialect.

Usage: ddl_check.py DIALECT FILE. Prints the statement kinds it parsed and exits non-zero naming
the first statement sqlglot cannot parse. sqlglot (PyPI) is a SQL parser with a grammar per
engine: it checks the syntax each engine accepts, not that the engine runs it (no Athena, Trino
or Spark runs here).
"""
import collections
import logging
import re
import sys

import sqlglot
from sqlglot import exp

# sqlglot warns on every CALL it passes through unparsed; those are checked below instead.
logging.getLogger("sqlglot").setLevel(logging.ERROR)
dialect, path = sys.argv[1], sys.argv[2]
# The grammar is strict enough to fail: a statement with a clause missing must not parse.
try:
    sqlglot.parse_one("CREATE VIEW v AS SELECT a FROM WHERE b", read=dialect)
    sys.exit(f"{dialect}: sqlglot accepted a broken statement; the check proves nothing")
except sqlglot.errors.ParseError:
    pass
CALL = re.compile(
    r"CALL \w+\.system\.register_table\(schema_name => '\w+', table_name => '\w+', "
    r"table_location => '[^']+'\)$"
)
text = open(path, encoding="utf-8").read()
# Statements end with ";" at a line's end; no string literal in the DDL holds one.
lines = [l for l in text.splitlines() if not l.lstrip().startswith("--")]
statements = [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]
kinds = collections.Counter()
for s in statements:
    s = s.rstrip(";")
    try:
        tree = sqlglot.parse_one(s, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    except Exception as e:  # sqlglot raises ParseError / TokenError
        sys.exit(f"{dialect}: cannot parse\n{s}\n{e}")
    if isinstance(tree, exp.Command):
        # A statement sqlglot passes through unparsed: only CALL is expected.
        if not CALL.match(s):
            sys.exit(f"{dialect}: not understood\n{s}")
        kinds["CALL"] += 1
    elif isinstance(tree, exp.Create):
        kinds[f"CREATE {tree.args.get('kind')}"] += 1
    else:
        sys.exit(f"{dialect}: unexpected statement\n{s}")
print(" ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
