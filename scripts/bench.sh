#!/usr/bin/env bash
# Run ../shared/bench/compare.py (lade against buildah and skopeo) on the shared workload.
# The shared workload.sh asks mmdebstrap for `debroot.tar.part`, whose name mmdebstrap does not recognise as
# a tarball (it writes a directory), so the rootfs tarball is made here first with --format=tar; workload.sh
# then keeps it and makes the rest.  Usage: scripts/bench.sh [compare.py args, e.g. --runs 3 --only build-warm]
# (without --only it goes on with scripts/bench-pull.sh and scripts/bench-cache.sh, RUNS=3 each)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/lade-bench}
export W
mkdir -p "$W"
if [ ! -f "$W/debroot.tar" ]; then
  mmdebstrap --variant=minbase --mode=root --format=tar bookworm "$W/debroot.tar.tmp" >/dev/null 2>&1
  mv "$W/debroot.tar.tmp" "$W/debroot.tar"
fi
cargo build --release -p lade
python3 ../shared/bench/compare.py --lade target/release/lade "$@"
# Without --only, also the figures of issue #16 that compare.py has no scenario for: the shared build cache
# (clean runner with --cache-from, cost of --cache-to) and pulls each from a synced disk.
case " $* " in
  *" --only"*) ;;
  *)
    LADE=$PWD/target/release/lade RUNS=${RUNS:-3} bash scripts/bench-pull.sh
    RUNS=${RUNS:-3} bash scripts/bench-cache.sh
    ;;
esac
