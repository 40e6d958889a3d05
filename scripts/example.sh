#!/usr/bin/env bash
# The main job: set the machine up, build lade, make the example's base images locally, and run
# `lade build` on examples/hello into the default local store.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p lade
lade=$PWD/target/release/lade
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image NAME ROOTFS_TAR: put a one-layer image into the store (umoci writes the layout, lade copies it in).
image() {
  umoci init --layout "$work/layout" 2>/dev/null || true
  umoci new --image "$work/layout:img"
  umoci raw add-layer --image "$work/layout:img" "$2"
  umoci config --image "$work/layout:img" --os linux --architecture amd64 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  "$lade" copy -q "oci:$work/layout:img" "lade:$1"
  rm -rf "$work/layout"
}

if ! "$lade" inspect localhost/lade-example/busybox:latest >/dev/null 2>&1; then
  mkdir -p "$work/bb/bin"
  cp /bin/busybox "$work/bb/bin/busybox"
  for t in sh ls cat echo id; do ln -s busybox "$work/bb/bin/$t"; done
  tar -C "$work/bb" -cf "$work/bb.tar" .
  image localhost/lade-example/busybox:latest "$work/bb.tar"
fi
if ! "$lade" inspect localhost/lade-example/debian-gcc:bookworm >/dev/null 2>&1; then
  mmdebstrap --variant=minbase --include=gcc,libc6-dev --format=tar bookworm "$work/deb.tar" >/dev/null 2>&1
  image localhost/lade-example/debian-gcc:bookworm "$work/deb.tar"
fi

"$lade" build -t localhost/lade-example/hello:latest examples/hello
