#!/usr/bin/env bash
# Load time and memory of `svcnet serve` at a given scale, from manifests.
#
#   bench/load.sh [--services N] [--replicas MIN-MAX] [--seed S] [--runs R] [--no-build]
#
# Generates the manifests with gen.py (--manifests-only) into target/bench/load-N-rMIN-MAX-sS,
# then starts svcnet R times (default 2) and reports, per run:
#   load s     from starting the process until it logs that it serves DNS (every name answerable)
#   phases     reading and parsing the files; decoding them, emulating the control plane and the
#              index taking each object as the emulation makes it; the index making its state of
#              them; building the snapshot (from its debug log)
#   peak MiB   VmHWM of the process
#   steady MiB VmRSS 3 s after it serves
#   reload s   after one manifest is touched (new time, same content): until the reloaded
#              state is in the index (every file is checked, the touched one read again, the
#              whole cluster emulated again and compared with the state served)
#   reload peak MiB   VmHWM after that reload (the higher of the load's and the reload's peak)
#   after MiB  VmRSS 3 s after that reload
# The defaults are the issue's scale: 100,000 services with 5-15 pods each (about 1M endpoints).
set -euo pipefail

SERVICES=100000
REPLICAS=5-15
SEED=1
RUNS=2
BUILD=1

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --services) SERVICES=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "load.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { echo "[load $(date +%H:%M:%S)] $*" >&2; }

[ "$BUILD" -eq 0 ] || cargo build --release --quiet
BIN="$ROOT/target/release/svcnet"
DATA="$ROOT/target/bench/load-$SERVICES-r$REPLICAS-s$SEED"
if [ ! -f "$DATA/svcnet.toml" ] || [ "$ROOT/bench/gen.py" -nt "$DATA/svcnet.toml" ]; then
  log "generating $SERVICES services ($REPLICAS pods each) into $DATA"
  rm -rf "$DATA"
  python3 bench/gen.py --services "$SERVICES" --replicas "$REPLICAS" --seed "$SEED" \
    --out "$DATA" --manifests-only >&2
fi

WORK=$(mktemp -d)
: >"$WORK/log"
PID=""
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The duration of a phase from a debug line's field (`took=1.2s`, `read=850ms`), in seconds.
field_s() {
  grep -m1 "$1" "$WORK/log" | grep -o "$2=[0-9.]*[mµn]*s" | head -1 | sed "s/^$2=//" |
    awk '/ms$/ {printf "%.2f", $0/1000; next} /µs$/ {printf "%.2f", $0/1e6; next}
         /ns$/ {printf "%.2f", $0/1e9; next} {printf "%.2f", $0}'
}

# Waits until the log has $2 lines matching $1 ($3 says what is awaited); fails if svcnet exits
# or after 300 s.
wait_log() {
  local since
  since=$(date +%s)
  until [ "$(grep -c "$1" "$WORK/log")" -ge "$2" ]; do
    if ! kill -0 "$PID" 2>/dev/null; then
      cat "$WORK/log" >&2
      echo "load.sh: svcnet exited before $3" >&2
      exit 1
    fi
    if [ $(($(date +%s) - since)) -gt 300 ]; then
      echo "load.sh: no $3 within 300 s" >&2
      exit 1
    fi
    sleep 0.05
  done
}

# A field of /proc/PID/status (VmHWM, VmRSS) in MiB.
status_mib() { awk -v f="$1:" '$1 == f {printf "%d", $2/1024}' "/proc/$PID/status"; }

echo "| run | services | pods | load s | read s | emulate s | index s | snapshot s | peak MiB | steady MiB | reload s | reload peak MiB | after MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
PODS=$(grep -h -o 'replicas: [0-9]*' "$DATA"/manifests/*.yaml | awk '{s+=$2} END {print s}')
for run in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  "$BIN" serve -f "$DATA/manifests" --config "$DATA/svcnet.toml" --no-upstream --no-admin \
    --udp-workers 1 --listen 127.0.0.1:0 --log debug 2>"$WORK/log" &
  PID=$!
  wait_log "serving DNS" 1 "serving"
  load=$(echo "$(date +%s.%N) - $start" | bc)
  sleep 3
  peak=$(status_mib VmHWM)
  steady=$(status_mib VmRSS)
  touch "$(ls "$DATA"/manifests/*.yaml | head -1)"
  start=$(date +%s.%N)
  wait_log "objects indexed" 2 "reload after touching a manifest"
  reload=$(echo "$(date +%s.%N) - $start" | bc)
  sleep 3
  reload_peak=$(status_mib VmHWM)
  after=$(status_mib VmRSS)
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
  read_s=$(field_s "manifests read" read)
  emulated=$(field_s "manifests read" emulated)
  emulate_s=$(echo "$emulated - $read_s" | bc)
  indexed=$(field_s "objects indexed" took)
  snapshot=$(field_s "snapshot built" took)
  printf "| %d | %d | %d | %.2f | %s | %.2f | %s | %s | %d | %d | %.2f | %d | %d |\n" "$run" \
    "$SERVICES" "$PODS" "$load" "$read_s" "$emulate_s" "$indexed" "$snapshot" "$peak" "$steady" \
    "$reload" "$reload_peak" "$after"
done
