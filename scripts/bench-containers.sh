#!/usr/bin/env bash
# Working containers against buildah (issue #15's speed targets), on the shared bench base image
# ($W/base-oci:bookworm, a Debian minbase made by ../shared/bench/workload.sh):
#   from    `lade from` vs `buildah from` of the image already in each tool's store (pulled first, not timed);
#           lade's first `from` unpacks the layer into its layer cache, so it is timed separately ("from-cold")
#   commit  commit of a container with 10,000 changed files (written through the mount point) vs
#           `buildah commit` of the same (buildah's default overlay driver, root)
# Each figure is the median of $RUNS runs (default 3). Needs root, buildah, a release build of lade.
# Usage: scripts/bench-containers.sh   (LADE=path/to/lade to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${W:-/tmp/lade-bench}
RUNS=${RUNS:-3}
if [ ! -d "$W/base-oci" ]; then
  echo "no $W/base-oci: run scripts/bench.sh (or ../shared/bench/workload.sh) first" >&2
  exit 1
fi
if [ -z "${LADE:-}" ]; then
  cargo build --release -p lade >/dev/null
  LADE=$PWD/target/release/lade
fi
T=$(mktemp -d /var/tmp/bench-containers.XXXXXX)
cleanup() {
  "$LADE" --root "$T/lade" umount --all >/dev/null 2>&1 || true
  buildah --root "$T/bh" --runroot "$T/bh-run" umount --all >/dev/null 2>&1 || true
  buildah --root "$T/bh" --runroot "$T/bh-run" rm --all >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
L=("$LADE" --root "$T/lade")
B=(buildah --root "$T/bh" --runroot "$T/bh-run")
IMG=oci:$W/base-oci:bookworm

now() { date +%s.%N; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# seconds taken by "$@" (output discarded)
timed() { local s; s=$(now); "$@" >/dev/null; echo "$(now) - $s" | bc -l; }

LNAME=localhost/bench-base:bookworm
"${L[@]}" copy -q "$IMG" "lade:$LNAME" >/dev/null
BNAME=$("${B[@]}" pull -q "$IMG")

cold=$(timed "${L[@]}" from --name cold "$LNAME")
lf=(); bf=()
for i in $(seq "$RUNS"); do
  lf+=("$(timed "${L[@]}" from --name "f$i" "$LNAME")")
  bf+=("$(timed "${B[@]}" from --name "f$i" "$BNAME")")
done

# 10,000 changed files: 100 directories of 100 small files, plus 100 files of the base rewritten.
fill() {
  local mnt=$1
  python3 - "$mnt" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    p = os.path.join(root, "app", f"mod{d:03d}")
    os.makedirs(p, exist_ok=True)
    for f in range(99):
        with open(os.path.join(p, f"file{f:03d}.txt"), "w") as fh:
            fh.write(f"module {d} file {f}\n" * 20)
docs = os.path.join(root, "usr/share/doc")
for n in sorted(os.listdir(docs))[:100]:
    with open(os.path.join(docs, n, "changed"), "w") as fh:
        fh.write("changed\n")
PY
}
lc=(); bc_=()
for i in $(seq "$RUNS"); do
  c=$("${L[@]}" from --name "c$i" "$LNAME")
  fill "$("${L[@]}" mount "$c")"
  "${L[@]}" umount "$c" >/dev/null
  lc+=("$(timed "${L[@]}" commit -q "$c" "localhost/bench-commit:$i")")
  c=$("${B[@]}" from --name "c$i" "$BNAME")
  fill "$("${B[@]}" mount "$c")"
  "${B[@]}" umount "$c" >/dev/null
  bc_+=("$(timed "${B[@]}" commit -q "$c" "localhost/bench-commit:$i")")
done

report() {
  local name=$1 l=$2 b=$3
  printf '%-8s lade %7.3fs  buildah %7.3fs  ratio %.2f\n' "$name" "$l" "$b" "$(echo "$l / $b" | bc -l)"
}
echo "runs: $RUNS (median); load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'from-cold lade %7.3fs (first from: the layer unpacked into the layer cache)\n' "$cold"
report from "$(median "${lf[@]}")" "$(median "${bf[@]}")"
report commit "$(median "${lc[@]}")" "$(median "${bc_[@]}")"
