#!/usr/bin/env bash
# The shared build cache on the shared workload (issue #16), release build:
#   cold         a clean store builds the workload
#   cold+export  the same, with --cache-to type=registry (the cost of exporting the cache)
#   warm-remote  another clean store builds with --cache-from that cache (a fresh CI runner)
# Prints the median of RUNS runs of each and the ratios the issue asks for (warm-remote ≤ 0.3× cold,
# cold+export ≤ 1.1× cold). Each export goes to a repository of its own, so it uploads every layer (none is
# "already there"), and each build starts after `sync`, so none pays for the previous one's writeback.
# REGISTRY_TMPFS=1 keeps the registry's storage in /dev/shm, standing in for a registry on another machine
# (in CI its disk writes are not the runner's; here they share one disk with the build). Uses its own docker-registry on a free port (the workload's FROM is rewritten to
# it), so it can run beside scripts/bench.sh.  Usage: RUNS=3 scripts/bench-cache.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/lade-bench}
RUNS=${RUNS:-3}
export W
mkdir -p "$W"
if [ ! -f "$W/debroot.tar" ]; then
  mmdebstrap --variant=minbase --mode=root --format=tar bookworm "$W/debroot.tar.tmp" >/dev/null 2>&1
  mv "$W/debroot.tar.tmp" "$W/debroot.tar"
fi
bash ../shared/bench/workload.sh >/dev/null
cargo build --release -p lade
LADE=$PWD/target/release/lade
S=$(mktemp -d /tmp/lade-bench-cache.XXXXXX)
REG_STORE=$S/registry
if [ "${REGISTRY_TMPFS:-0}" = 1 ]; then
  REG_STORE=$(mktemp -d /dev/shm/lade-bench-registry.XXXXXX)
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat >"$S/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $REG_STORE
http:
  addr: $REG
EOF
docker-registry serve "$S/registry.yml" >"$S/registry.log" 2>&1 &
REG_PID=$!
trap 'kill $REG_PID 2>/dev/null || true; rm -rf "$S" "$REG_STORE"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
skopeo copy -q --dest-tls-verify=false "oci:$W/base-oci:bookworm" "docker://$REG/bench-base:bookworm"
sed "s|127.0.0.1:5000|$REG|" "$W/ctx/Containerfile" >"$S/Containerfile"
export SOURCE_DATE_EPOCH=1700000000

# seconds taken by a build into a clean store, with extra flags
build() {
  local root=$S/store-$1
  shift
  rm -rf "$root"
  sync
  local t0 t1
  t0=$(date +%s.%N)
  "$LADE" --root "$root" build --layers -q --tls-verify=false -f "$S/Containerfile" -t bench:1 "$@" "$W/ctx" >/dev/null
  t1=$(date +%s.%N)
  rm -rf "$root"
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}

cold=() export=() warm=()
for i in $(seq "$RUNS"); do
  cold+=("$(build cold)")
  export+=("$(build export --cache-to "type=registry,ref=$REG/bench-cache-$i:1")")
  warm+=("$(build warm --cache-from "type=registry,ref=$REG/bench-cache-$i:1")")
  echo "run $i: cold ${cold[-1]}s  cold+export ${export[-1]}s  warm-remote ${warm[-1]}s"
done
python3 - "${cold[*]}" "${export[*]}" "${warm[*]}" <<'PY'
import statistics, sys
c, e, w = (statistics.median(map(float, a.split())) for a in sys.argv[1:])
print(f"median: cold {c:.2f}s  cold+export {e:.2f}s  warm-remote {w:.2f}s")
print(f"warm-remote / cold = {w / c:.2f} (target <= 0.30)")
print(f"cold+export / cold = {e / c:.2f} (target <= 1.10)")
PY
