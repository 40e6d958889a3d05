#!/usr/bin/env bash
# Play the CI matrix of github-actions.yml on one machine: two stores as two runners (`lade --root DIR`),
# one docker-registry on 127.0.0.1, linux/amd64 built natively and linux/arm64 under QEMU (binfmt_misc, or
# qemu-aarch64-static injected), each runner pushing its own per-architecture image, then one merge into an
# index that skopeo must show with both platforms. Offline: the base is a static busybox of each
# architecture copied into `FROM scratch`, and the arm64 RUN step proves it ran emulated (`uname -m`).
#
# Usage: examples/ci/local-matrix.sh            (as root, or as a user with /etc/subuid for rootless lade)
# Environment (all optional):
#   LADE           the lade binary (default: lade on PATH)
#   REGISTRY       HOST:PORT of a running plain-HTTP registry to use (default: start docker-registry)
#   AMD64_BUSYBOX  a static amd64 busybox (default: /bin/busybox, Debian's busybox-static)
#   ARM64_BUSYBOX  a static arm64 busybox (default: /usr/local/lib/lade-test/busybox-arm64/bin/busybox,
#                  which scripts/setup.sh installs)
#   STEP_TIMEOUT   seconds any one command may take (default: 300)
# Every wait is bounded; the registry it started and its scratch directory are removed on any exit.
set -euo pipefail

LADE=${LADE:-lade}
AMD64_BUSYBOX=${AMD64_BUSYBOX:-/bin/busybox}
ARM64_BUSYBOX=${ARM64_BUSYBOX:-/usr/local/lib/lade-test/busybox-arm64/bin/busybox}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}

say() { printf 'local-matrix: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
run() { timeout --kill-after=10 "$STEP_TIMEOUT" "$@"; }

for tool in "$LADE" skopeo python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs the peers)"
done
[ -x "$AMD64_BUSYBOX" ] || die "no amd64 busybox at $AMD64_BUSYBOX (install busybox-static)"
[ -x "$ARM64_BUSYBOX" ] || die "no arm64 busybox at $ARM64_BUSYBOX (scripts/setup.sh installs one)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lade-local-matrix.XXXXXX")
REGISTRY_PID=
cleanup() {
  if [ -n "$REGISTRY_PID" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say "scratch directory $WORK"

# The registry both runners push to.
if [ -z "${REGISTRY:-}" ]; then
  command -v docker-registry >/dev/null || die "docker-registry is not installed (or set REGISTRY=HOST:PORT)"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  REGISTRY=127.0.0.1:$port
  cat >"$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REGISTRY
YAML
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 150); do   # at most 15 s
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited: $(cat "$WORK/registry.log")"
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "docker-registry did not listen on $REGISTRY in 15 s"
  say "docker-registry on $REGISTRY"
fi

# The sources every runner checks out.
CTX=$WORK/src
mkdir -p "$CTX"
cp "$AMD64_BUSYBOX" "$CTX/busybox-amd64"
cp "$ARM64_BUSYBOX" "$CTX/busybox-arm64"
cat >"$CTX/Containerfile" <<'CONTAINERFILE'
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /etc && /bin/busybox uname -m > /etc/built-on"]
CMD ["/bin/busybox", "cat", "/etc/built-on"]
CONTAINERFILE
export SOURCE_DATE_EPOCH=1700000000
IMAGE=$REGISTRY/ci/app

# The matrix: one runner (one store) per architecture, each pushing IMAGE:ARCH.
for arch in amd64 arm64; do
  say "runner-$arch: lade build --platform linux/$arch --push"
  run "$LADE" --root "$WORK/runner-$arch" build --platform "linux/$arch" --progress plain \
    --tls-verify=false -t "$IMAGE:$arch" --push "$CTX" >&2
done

# The merge job: a third runner with an empty store.
say "merge: lade manifest merge $IMAGE:latest"
run "$LADE" --root "$WORK/runner-merge" manifest merge --tls-verify=false \
  "$IMAGE:latest" "$IMAGE:amd64" "$IMAGE:arm64" >&2

# The check: skopeo reads one index with both platforms, and the arm64 image's RUN step ran as aarch64.
run skopeo inspect --raw --tls-verify=false "docker://$IMAGE:latest" >"$WORK/index.json"
python3 - "$WORK/index.json" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
found = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index.get("manifests", []))
if found != ["linux/amd64", "linux/arm64"]:
    sys.exit(f"local-matrix: error: the index lists {found}, not linux/amd64 and linux/arm64")
PY
run skopeo copy -q --src-tls-verify=false "docker://$IMAGE:arm64" "oci:$WORK/arm64:check" >&2
built_on=$(python3 - "$WORK/arm64" <<'PY'
import json, sys, tarfile
layout = sys.argv[1]
blob = lambda d: f"{layout}/blobs/{d.replace(':', '/')}"
index = json.load(open(f"{layout}/index.json"))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
with tarfile.open(blob(manifest["layers"][-1]["digest"])) as t:
    print(t.extractfile("etc/built-on").read().decode().strip())
PY
)
[ "$built_on" = aarch64 ] || die "the arm64 RUN step ran as '$built_on', not aarch64"
say "ok: $IMAGE:latest is an index of linux/amd64 and linux/arm64 (arm64 built under QEMU: $built_on)"
echo "$IMAGE:latest"
