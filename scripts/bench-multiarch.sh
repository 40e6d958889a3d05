#!/usr/bin/env bash
# Issue #6's benchmark: the wall time of one two-platform build (linux/amd64 + linux/arm64, arm64 under QEMU)
# against the sum of building each platform alone, and against `buildah build --platform ... --manifest`, on
# the same Containerfile and the same base index (busybox-static for both architectures, served by a
# loopback docker-registry). Usage: scripts/bench-multiarch.sh [RUNS]   (needs scripts/setup.sh; root)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build --release -p lade >/dev/null
lade=$PWD/target/release/lade
work=$(mktemp -d)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
. scripts/registry.sh
start_registry "$work/registry"
reg_pid=$REG_PID

# The base index: one busybox image per architecture, made with umoci, merged and pushed with lade.
for arch in amd64 arm64; do
  bb=/bin/busybox; [ "$arch" = arm64 ] && bb=/usr/local/lib/lade-test/busybox-arm64/bin/busybox
  mkdir -p "$work/rootfs-$arch/bin" "$work/rootfs-$arch/tmp"
  cp "$bb" "$work/rootfs-$arch/bin/busybox"
  for a in sh sha256sum seq head cat uname mkdir; do ln -sf busybox "$work/rootfs-$arch/bin/$a"; done
  tar -C "$work/rootfs-$arch" -cf "$work/$arch.tar" .
  [ -d "$work/layout" ] || umoci init --layout "$work/layout"
  umoci new --image "$work/layout:$arch"
  umoci raw add-layer --image "$work/layout:$arch" "$work/$arch.tar"
  umoci config --image "$work/layout:$arch" --os linux --architecture "$arch" --config.env PATH=/bin
done
"$lade" --root "$work/seed" manifest create base:1 >/dev/null
for arch in amd64 arm64; do "$lade" --root "$work/seed" manifest add base:1 "oci:$work/layout:$arch" >/dev/null; done
"$lade" --root "$work/seed" manifest push --all --tls-verify=false base:1 "docker://$REG/base:1" >/dev/null

# Work that takes a moment natively and longer under emulation.
mkdir -p "$work/ctx"
cat > "$work/ctx/Containerfile" <<CF
FROM $REG/base:1
RUN for i in \$(seq 1 400); do head -c 65536 /bin/busybox | sha256sum; done > /sums && uname -m > /arch
RUN mkdir -p /out && cat /sums /arch > /out/report
CF

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); awk "BEGIN{print $e - $s}"; }
both=(); alone=(); peer=()
for r in $(seq "$RUNS"); do
  rm -rf "$work/l1" "$work/l2"
  both+=("$(t "$lade" --root "$work/l1" build --no-cache --tls-verify=false --platform linux/amd64,linux/arm64 --manifest m:1 "$work/ctx")")
  a=$(t "$lade" --root "$work/l2" build --no-cache --tls-verify=false --platform linux/amd64 -t a:1 "$work/ctx")
  b=$(t "$lade" --root "$work/l2" build --no-cache --tls-verify=false --platform linux/arm64 -t b:1 "$work/ctx")
  alone+=("$(awk "BEGIN{print $a + $b}")")
  buildah rmi -a -f >/dev/null 2>&1 || true; buildah manifest rm bm:1 >/dev/null 2>&1 || true
  peer+=("$(t buildah build --isolation chroot --layers=false --tls-verify=false --platform linux/amd64,linux/arm64 --manifest bm:1 "$work/ctx")")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
B=$(med "${both[@]}"); A=$(med "${alone[@]}"); P=$(med "${peer[@]}")
printf '%-44s %8s\n' "scenario (median of $RUNS)" "seconds"
printf '%-44s %8.2f\n' "lade, both platforms in one command" "$B" "lade, each platform alone (sum)" "$A" "buildah build --platform ... --manifest" "$P"
awk "BEGIN{printf \"one command / sum of singles: %.2f   lade / buildah: %.2f\\n\", $B / $A, $B / $P}"
