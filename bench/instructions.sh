#!/usr/bin/env bash
# Instructions per query on the UDP answer path, counted by callgrind: the
# figure does not depend on the machine's load, so it can be tracked in CI
# (reported, never a pass/fail). For each query kind it runs the path
# benchmark twice (N1 and N2 queries) and divides the difference, so the
# setup (loading the examples) cancels out.
#
#   bench/instructions.sh            # all kinds
#   bench/instructions.sh srv        # one kind
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get install -y -qq valgrind >/dev/null
fi

bin=$(cargo bench -p svcnet-net --bench udp_path --no-run --locked 2>&1 |
    sed -n 's/.*(\(target\/[^)]*udp_path-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "udp_path benchmark binary not found" >&2; exit 1; }

count() { # kind queries -> instructions executed
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

n1=1000
n2=11000
kinds=${1:-clusterip headless srv nxdomain ptr}
echo "| query | instructions per query |"
echo "|---|---|"
for kind in $kinds; do
    a=$(count "$kind" "$n1")
    b=$(count "$kind" "$n2")
    echo "| $kind | $(( (b - a) / (n2 - n1) )) |"
done
