#!/usr/bin/env bash
# Pull speed (issue #16: lade ≤ 0.6× skopeo), the image compare.py's "pull" copies: the shared workload as
# buildah builds and pushes it (base layer, the 10,000-file COPY and its chown: ~480 MB of blobs), copied
# from a loopback registry into a fresh OCI layout by `skopeo copy` and by `lade copy`, alternating.
#
# lade fsyncs every blob before it becomes visible; skopeo leaves them dirty in the page cache. In
# compare.py each pull follows a push that rewrote ~420 MB in the same filesystem, so lade's durable
# writes queue behind the kernel flushing that push (and skopeo's pull) to disk. Here every timed pull
# starts after `sync`, from the same quiet state, which measures the tools rather than the previous step's
# writeback. Prints the median of RUNS pairs.  Usage: RUNS=5 scripts/bench-pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/lade-bench}
RUNS=${RUNS:-5}
export W
mkdir -p "$W"
if [ ! -f "$W/debroot.tar" ]; then
  mmdebstrap --variant=minbase --mode=root --format=tar bookworm "$W/debroot.tar.tmp" >/dev/null 2>&1
  mv "$W/debroot.tar.tmp" "$W/debroot.tar"
fi
bash ../shared/bench/workload.sh >/dev/null
if [ -z "${LADE:-}" ]; then
  cargo build --release -p lade >&2
  LADE=$PWD/target/release/lade
fi
S=$(mktemp -d /tmp/lade-bench-pull.XXXXXX)
. scripts/registry.sh
trap 'kill $REG_PID 2>/dev/null || true; buildah rmi -f "$REG/peer:1" >/dev/null 2>&1 || true; rm -rf "$S"' EXIT
start_registry "$S/registry"
skopeo copy -q --dest-tls-verify=false "oci:$W/base-oci:bookworm" "docker://$REG/bench-base:bookworm"
sed "s|127.0.0.1:5000|$REG|" "$W/ctx/Containerfile" >"$S/Containerfile"
buildah bud --isolation chroot --layers -q --tls-verify=false -f "$S/Containerfile" -t "$REG/peer:1" "$W/ctx" >/dev/null
buildah push -q --tls-verify=false "$REG/peer:1" "docker://$REG/peer:1"

# seconds taken by one pull into a fresh layout, after sync
pull() {
  local out=$S/out
  rm -rf "$out"
  sync
  local t0 t1
  t0=$(date +%s.%N)
  "$@" "oci:$out:x" >/dev/null
  t1=$(date +%s.%N)
  rm -rf "$out"
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

peer=() mine=()
for _ in $(seq "$RUNS"); do
  peer+=("$(pull skopeo copy -q --src-tls-verify=false "docker://$REG/peer:1")")
  mine+=("$(pull "$LADE" copy -q --src-tls-verify=false "docker://$REG/peer:1")")
done
python3 - "${peer[*]}" "${mine[*]}" <<'PY'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
l = [float(x) for x in sys.argv[2].split()]
print(f"pull  skopeo {statistics.median(p):.3f} s  lade {statistics.median(l):.3f} s  "
      f"lade/skopeo {statistics.median([a / b for a, b in zip(l, p)]):.3f}  (target <= 0.6)")
PY
