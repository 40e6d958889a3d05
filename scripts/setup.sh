#!/usr/bin/env bash
# Installs everything lade's build and tests need on a Debian machine (run as root; idempotent):
# the wasm32-wasip2 Rust target for the plugins, and the real peers the tests compare against.
set -euo pipefail

PACKAGES=(
  buildah skopeo podman umoci runc      # peers: build, copy, load, unpack, OCI runtime
  docker-registry apache2-utils          # a real registry on loopback, htpasswd for its basic auth
  qemu-user-static binfmt-support        # foreign-architecture RUN steps
  busybox-static mmdebstrap              # base images made locally (tests cannot pull)
  uidmap fuse-overlayfs                  # rootless: newuidmap/newgidmap
  curl jq zstd xz-utils bzip2 python3    # fixtures and the benchmark
  git                                    # ADD of git repositories (and its test's git daemon)
  openssl                                # a private CA and client certificates for the HTTPS registry test
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# An arm64 busybox for the multi-arch tests. busybox-static:arm64 cannot be installed next to the amd64 one
# (same paths), so its .deb is unpacked into $ARM64_BUSYBOX_DIR instead.
ARM64_BUSYBOX_DIR=/usr/local/lib/lade-test/busybox-arm64
if [ ! -x "$ARM64_BUSYBOX_DIR/bin/busybox" ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -q >/dev/null; }
  tmp=$(mktemp -d) && chmod 755 "$tmp"   # apt's _apt user downloads into it
  (cd "$tmp" && apt-get download -q busybox-static:arm64 >/dev/null)
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/x"
  install -D -m 0755 "$tmp/x/bin/busybox" "$ARM64_BUSYBOX_DIR/bin/busybox"
  rm -rf "$tmp"
fi

# A user with subordinate ids, for the rootless build tests (tests/tests/rootless.rs).
if ! id lade-rootless >/dev/null 2>&1; then
  useradd --create-home --shell /bin/sh lade-rootless
fi
for f in /etc/subuid /etc/subgid; do
  grep -q '^lade-rootless:' "$f" 2>/dev/null || echo 'lade-rootless:300000:65536' >> "$f"
done

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

# binfmt_misc for QEMU: mount it when absent, then register the handlers Debian ships.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || echo "setup: could not mount binfmt_misc" >&2
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && command -v update-binfmts >/dev/null; then
  update-binfmts --enable >/dev/null 2>&1 || true
fi
echo "setup: done" >&2
