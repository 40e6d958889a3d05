#!/usr/bin/env bash
# Issue #17's sigstore figures, over a loopback docker-registry:
#  - `lade sign` (a .sig tag signature, and a cosign v3 bundle referrer): whole process, median of RUNS, and
#    the scrypt of the encrypted key inside it (lade logs the time it took to open the key), reported apart;
#  - verify-on-pull: `lade pull` under a sigstoreSigned policy (bundle, then .sig) against the same pull under
#    insecureAcceptAnything, each into a fresh store; the difference is what verifying adds.
# Usage: scripts/bench-sigstore.sh [RUNS]   (needs scripts/setup.sh; LADE=path/to/lade to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-9}
if [ -z "${LADE:-}" ]; then
  cargo build --release -p lade >/dev/null
  LADE=$PWD/target/release/lade
fi
work=$(mktemp -d)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
. scripts/registry.sh
start_registry "$work/registry"
reg_pid=$REG_PID
reg=$REG

# A small image (busybox), made with umoci and pushed with skopeo.
mkdir -p "$work/rootfs/bin" && cp /bin/busybox "$work/rootfs/bin/busybox"
tar -C "$work/rootfs" -cf "$work/layer.tar" .
umoci init --layout "$work/layout" && umoci new --image "$work/layout:img"
umoci raw add-layer --image "$work/layout:img" "$work/layer.tar"
for r in sig bundle; do
  skopeo copy -q --dest-tls-verify=false "oci:$work/layout:img" "docker://$reg/$r:1"
done
export COSIGN_PASSWORD=bench
(cd "$work" && "$LADE" generate-key-pair >/dev/null 2>&1)

# One run: "wall_us cpu_us" (cpu: the lade process's user + system time, which a loaded machine inflates far
# less than the wall time). A warm-up run first fails the script if the command fails.
run1() { local TIMEFORMAT='%R %U %S'; { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{printf "%d %d\n", $1 * 1e6, ($2 + $3) * 1e6}'; }
# Median of column $1 (1 wall, 2 cpu), in ms.
median() { awk -v c="$1" '{print $c}' | sort -n | awk '{a[NR]=$1} END{printf "%.1f", a[int((NR+1)/2)]/1000}'; }
runs() { "$@" >/dev/null 2>&1; for _ in $(seq "$RUNS"); do run1 "$@"; done; }
report() { local t; t=$(cat); echo "$(echo "$t" | median 1) ms wall, $(echo "$t" | median 2) ms cpu"; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "lade sign (.sig tag), whole process: $(runs "$LADE" sign --key "$work/cosign.key" --tls-verify=false "$reg/sig:1" | report)"
echo "lade sign --bundle (referrer), whole process: $(runs "$LADE" sign --bundle --key "$work/cosign.key" --tls-verify=false "$reg/bundle:1" | report)"
scrypt=$(for _ in $(seq "$RUNS"); do
  "$LADE" --log-level info sign --key "$work/cosign.key" --tls-verify=false "$reg/sig:1" 2>&1 \
    | sed -n 's/.*opened the private key in \([0-9.]*\) ms (\([0-9.]*\) ms cpu).*/\1 \2/p'
done | awk '{print $1 * 1000, $2 * 1000}')
echo "  of which opening the encrypted key (scrypt N=32768, in the plugin): $(echo "$scrypt" | report)"
echo "lade verify --key (no scrypt; bundle), whole process: $(runs "$LADE" verify --key "$work/cosign.pub" --tls-verify=false "$reg/bundle:1" | report)"

cat > "$work/accept.json" <<J
{"default": [{"type": "insecureAcceptAnything"}]}
J
cat > "$work/signed.json" <<J
{"default": [{"type": "sigstoreSigned", "keyPath": "$work/cosign.pub"}]}
J
mkdir -p "$work/registries.d"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$reg" > "$work/registries.d/r.yaml"
pull_runs() { # $1: policy, $2: repo
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/store"
    run1 "$LADE" --root "$work/store" --policy "$1" --registries.d "$work/registries.d" pull --tls-verify=false "$reg/$2:1"
  done
}
for r in bundle sig; do
  "$LADE" --root "$work/store" --policy "$work/signed.json" --registries.d "$work/registries.d" pull --tls-verify=false "$reg/$r:1" >/dev/null 2>&1
  base=$(pull_runs "$work/accept.json" "$r")
  signed=$(pull_runs "$work/signed.json" "$r")
  for c in 1 2; do
    b=$(echo "$base" | median $c); v=$(echo "$signed" | median $c)
    echo "pull of a $r-signed image ($([ $c = 1 ] && echo wall || echo cpu)): $b ms unchecked, $v ms verified: +$(awk "BEGIN{printf \"%.1f\", $v - $b}") ms"
  done
done
