#!/usr/bin/env bash
# Issue #17's GPG timings over loopback (a docker-registry on 127.0.0.1, a file:// lookaside): signing a
# manifest (`lade standalone-sign` against `skopeo standalone-sign`, both exporting the key from the same
# GnuPG home), the cost --sign-by adds to a copy, and what a signedBy policy adds to a pull (the lookaside
# read and the gpg plugin's check) against insecureAcceptAnything. Medians of RUNS.
# Usage: scripts/bench-signing.sh [RUNS]   (LADE=path uses that binary instead of building --release)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
if [ -z "${LADE:-}" ]; then cargo build --release -p lade >/dev/null; LADE=$PWD/target/release/lade; fi
work=$(mktemp -d)
reg_pid=
export GNUPGHOME=$work/gnupg
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null
  gpgconf --kill gpg-agent 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. scripts/registry.sh
start_registry "$work/registry"
reg_pid=$REG_PID
reg=$REG

# A key with a passphrase, an image, the lookaside and the policies.
mkdir -m 700 "$GNUPGHOME"
echo "bench pass" > "$work/pass"
gpg --batch --pinentry-mode loopback --passphrase "bench pass" --quick-gen-key "Bench <b@example.com>" ed25519 sign never 2>/dev/null
gpg --check-trustdb >/dev/null 2>&1 || true
fpr=$(gpg --with-colons --list-keys 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
gpg --export "$fpr" > "$work/pub.gpg"
# A second key without passphrase: signing without the key derivation (S2K) gpg and the plugin each run.
gpg --batch --pinentry-mode loopback --passphrase "" --quick-gen-key "Bench2 <b2@example.com>" ed25519 sign never 2>/dev/null
fpr2=$(gpg --with-colons --list-keys b2@example.com 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
mkdir -p "$work/rootfs" "$work/rd"
head -c 1048576 /dev/urandom > "$work/rootfs/data"
tar -C "$work/rootfs" -cf "$work/layer.tar" .
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:t" >/dev/null
umoci raw add-layer --image "$work/layout:t" "$work/layer.tar" >/dev/null
printf 'docker:\n  %s:\n    lookaside: file://%s/sigs\n' "$reg" "$work" > "$work/rd/bench.yaml"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$work/accept.json"
printf '{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"%s/pub.gpg"}]}\n' "$work" > "$work/signed.json"
skopeo inspect --raw "oci:$work/layout:t" > "$work/manifest.json"
L=("$LADE" --registries.d "$work/rd")
"${L[@]}" --insecure-policy copy -q --dest-tls-verify=false --sign-by "$fpr" --sign-passphrase-file "$work/pass" \
  "oci:$work/layout:t" "docker://$reg/img:1"

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s.%N); awk "BEGIN{print ($e - $s) * 1000}"; }
sign_l=(); sign_s=(); sign_l2=(); sign_s2=(); copy_plain=(); copy_signed=(); pull_accept=(); pull_signed=()
for r in $(seq "$RUNS"); do
  sign_l+=("$(t "$LADE" standalone-sign "$work/manifest.json" "$reg/img:1" "$fpr" -o "$work/l.sig" --passphrase-file "$work/pass")")
  sign_s+=("$(t skopeo standalone-sign --passphrase-file "$work/pass" "$work/manifest.json" "$reg/img:1" "$fpr" -o "$work/s.sig")")
  sign_l2+=("$(t "$LADE" standalone-sign "$work/manifest.json" "$reg/img:1" "$fpr2" -o "$work/l2.sig")")
  sign_s2+=("$(t skopeo standalone-sign "$work/manifest.json" "$reg/img:1" "$fpr2" -o "$work/s2.sig")")
  copy_plain+=("$(t "${L[@]}" --insecure-policy copy -q --dest-tls-verify=false "oci:$work/layout:t" "docker://$reg/plain:$r")")
  copy_signed+=("$(t "${L[@]}" --insecure-policy copy -q --dest-tls-verify=false --sign-by "$fpr" --sign-passphrase-file "$work/pass" "oci:$work/layout:t" "docker://$reg/signed:$r")")
  rm -rf "$work/s1" "$work/s2"
  pull_accept+=("$(t "${L[@]}" --root "$work/s1" --policy "$work/accept.json" pull -q --tls-verify=false "$reg/img:1")")
  pull_signed+=("$(t "${L[@]}" --root "$work/s2" --policy "$work/signed.json" pull -q --tls-verify=false "$reg/img:1")")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-58s %8s\n' "GPG, loopback (median of $RUNS)" "ms"
printf '%-58s %8.0f\n' \
  "lade standalone-sign (gpg export + plugin unlock + sign)" "$(med "${sign_l[@]}")" \
  "skopeo standalone-sign (gpgme)" "$(med "${sign_s[@]}")" \
  "lade standalone-sign, key without passphrase" "$(med "${sign_l2[@]}")" \
  "skopeo standalone-sign, key without passphrase" "$(med "${sign_s2[@]}")" \
  "lade copy oci: -> docker:// (1 MiB layer)" "$(med "${copy_plain[@]}")" \
  "lade copy --sign-by, same" "$(med "${copy_signed[@]}")" \
  "lade pull, insecureAcceptAnything" "$(med "${pull_accept[@]}")" \
  "lade pull, signedBy (lookaside read + gpg plugin verify)" "$(med "${pull_signed[@]}")"
