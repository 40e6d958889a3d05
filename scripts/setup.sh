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
  libseccomp-dev gcc libc6-dev           # building lade (seccomp), the confinement test's static syscall probe
  golang-go python3-venv rpm             # the SBOM tests' oracles: go version -m, pip list, rpm (npm below)
  db5.3-util sqlite3                     # Berkeley DB rpm databases for the SBOM tests (db_load; rpm reads them back)
  python3-yaml                           # the CI recipes test parses examples/ci with it
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

# npm for the SBOM tests (NodeSource's nodejs carries its own; Debian's comes apart).
command -v npm >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends npm >/dev/null; }

# spdx-tools (pyspdxtools) and jsonschema for the SBOM tests, in a venv of their own.
SBOM_TOOLS=/usr/local/lib/lade-test/spdx-tools
if [ ! -x "$SBOM_TOOLS/bin/pyspdxtools" ]; then
  python3 -m venv "$SBOM_TOOLS"
  "$SBOM_TOOLS/bin/pip" install -q spdx-tools jsonschema
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

# Python cryptography and PyNaCl: the independent cosign implementation the sigstore plugin's tests check
# against (plugins/sigstore/tests/peer.py).
# (Debian's python3 refuses a plain pip install (PEP 668); its own packages are the last resort.)
if ! python3 -c 'import cryptography, nacl' 2>/dev/null; then
  python3 -m pip install -q cryptography pynacl 2>/dev/null \
    || python3 -m pip install -q --break-system-packages cryptography pynacl 2>/dev/null \
    || apt-get install -y -q --no-install-recommends python3-cryptography python3-nacl >/dev/null
fi

# binfmt_misc for QEMU: mount it when absent, then register the handlers Debian ships.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || echo "setup: could not mount binfmt_misc" >&2
fi
if [ -e /proc/sys/fs/binfmt_misc/status ] && command -v update-binfmts >/dev/null; then
  update-binfmts --enable >/dev/null 2>&1 || true
fi
# Version-comparison and schema oracles for the vuln plugin's tests (tests/tests/vuln_versions.rs, vuln_db.rs):
# Python's packaging and jsonschema, and npm's semver package in a fixed directory.
python3 -c 'import packaging, jsonschema' 2>/dev/null || pip install -q packaging jsonschema
ORACLES_DIR=/usr/local/lib/lade-oracles
if [ ! -f "$ORACLES_DIR/node_modules/semver/package.json" ]; then
  mkdir -p "$ORACLES_DIR" && (cd "$ORACLES_DIR" && npm install -q --no-audit --no-fund semver >/dev/null)
fi
# npm's sigstore libraries (@sigstore/verify, @sigstore/bundle, @sigstore/core): the independent implementation
# that verifies lade's cosign v3 bundles offline and makes bundles for lade (tests/fixtures/sigstore/bundle_peer.js).
if [ ! -f "$ORACLES_DIR/node_modules/@sigstore/verify/package.json" ]; then
  mkdir -p "$ORACLES_DIR" && (cd "$ORACLES_DIR" && npm install -q --no-audit --no-fund @sigstore/verify @sigstore/bundle @sigstore/core >/dev/null)
fi
echo "setup: done" >&2
