#!/usr/bin/env bash
# The SBOM and vulnerability-scan figures of issue #14, with a release build:
#  1. `lade sbom` of the shared bench base image (Debian bookworm minbase, an OCI layout made with umoci as
#     ../shared/bench/workload.sh does), whole process, warm plugin compile cache and warm scan cache (the
#     layer's extract kept by an earlier scan): target <= 300 ms; also the first scan (no extract yet);
#  2. `lade scan` of a 500-package SBOM against a 200,000-record OSV database (written here): target <= 1 s;
#  3. plugin memory: both runs again with `--plugin-memory 256` (the wasm store's memory cap, MiB), which
#     fail if a plugin asks for more; the process's peak RSS from /usr/bin/time -v is printed too.
# Usage: scripts/bench-scan.sh [RUNS]   (W=/tmp/lade-bench by default, shared with scripts/bench.sh;
# LADE=path/to/lade skips the release build and times that binary instead)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
W=${W:-/tmp/lade-bench}
mkdir -p "$W"
if [ ! -f "$W/debroot.tar" ]; then
  mmdebstrap --variant=minbase --mode=root --format=tar bookworm "$W/debroot.tar.tmp" >/dev/null 2>&1
  mv "$W/debroot.tar.tmp" "$W/debroot.tar"
fi
if [ ! -d "$W/base-oci" ]; then
  rm -rf "$W/base-oci.part"
  umoci init --layout "$W/base-oci.part"
  umoci new --image "$W/base-oci.part:bookworm"
  umoci raw add-layer --image "$W/base-oci.part:bookworm" "$W/debroot.tar"
  umoci gc --layout "$W/base-oci.part"
  mv "$W/base-oci.part" "$W/base-oci"
fi
if [ -z "${LADE:-}" ]; then
  cargo build --release -p lade >&2
  LADE=$PWD/target/release/lade
fi
S=$W/scan
mkdir -p "$S"

# A 200,000-record OSV database over 20,000 packages (Debian:12 source packages, PyPI, npm), and a 500-package
# SBOM in lade's JSON whose packages all have records (about 10 each), some affected.
if [ ! -d "$S/db" ]; then
  python3 - "$S" <<'PY'
import json, sys, zipfile, pathlib
out = pathlib.Path(sys.argv[1])
ecos = [("Debian:12", "deb"), ("PyPI", "pypi"), ("npm", "npm")]
def version(eco, i):
    return f"{i % 7}.{i % 13}.{i % 5}-{1 + i % 3}" if eco == "Debian:12" else f"{i % 7}.{i % 13}.{i % 5}"
with zipfile.ZipFile(out / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for n in range(200_000):
        eco, _ = ecos[n % 3]
        pkg = f"pkg{(n // 3) % 6667}"
        rec = {"id": f"LADE-BENCH-{n}", "modified": "2099-01-01T00:00:00Z", "summary": f"bench record {n}",
               "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
               "affected": [{"package": {"ecosystem": eco, "name": pkg},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version(eco, n)}]}]}]}
        z.writestr(f"LADE-BENCH-{n}.json", json.dumps(rec))
packages = []
for i in range(500):
    eco, kind = ecos[i % 3]
    name = f"pkg{i * 13 % 6667}"
    p = {"name": name, "version": version(eco, i), "type": kind, "layer": "sha256:l", "location": "/x"}
    if kind == "deb":
        p["sourceName"] = name
    packages.append(p)
doc = {"source": {"reference": "bench", "digest": ""},
       "distro": {"id": "debian", "versionId": "12", "prettyName": "Debian 12"}, "packages": packages, "notes": []}
(out / "sbom.json").write_text(json.dumps(doc))
PY
  "$LADE" db import "$S/all.zip" --db "$S/db.part" >&2
  mv "$S/db.part" "$S/db"
fi

# Median wall time of RUNS runs of a command, in ms (after one warm-up run).
median_ms() {
  "$@" >/dev/null
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

# Peak RSS of one run in MiB, with the plugin memory cap at 256 MiB (the run fails above it).
peak_mib() {
  local log
  log=$(mktemp)
  /usr/bin/time -v "$LADE" --plugin-memory 256 "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
  awk '/Maximum resident set size/ {printf "%d", $6 / 1024}' "$log"
  rm -f "$log"
}

# The compiled plugins and the scan cache, kept between runs of this script.
export LADE_CACHE_DIR=${LADE_CACHE_DIR:-$W/lade-cache}
# The first scan of a layer: no extract cached. (The old extracts are moved aside and deleted after the
# timing: deleting them just before would time this filesystem's online discard of their blocks.)
first_ms() {
  local times=() aside=$LADE_CACHE_DIR/scan/aside
  for i in $(seq "$RUNS"); do
    mkdir -p "$aside"
    [ -d "$LADE_CACHE_DIR/scan/extracts" ] && mv "$LADE_CACHE_DIR/scan/extracts" "$aside/$i"
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  rm -rf "$aside"
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
SBOM=(--root "$ROOT" sbom --format json "oci:$W/base-oci:bookworm")
SCAN=(scan --plugin-data "vuln-db=$S/db" -f json "$S/sbom.json")
packages=$("$LADE" "${SBOM[@]}" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')
findings=$("$LADE" "${SCAN[@]}" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["findings"]))')
sbom_first_ms=$(first_ms "$LADE" "${SBOM[@]}")
sbom_ms=$(median_ms "$LADE" "${SBOM[@]}")
scan_ms=$(median_ms "$LADE" "${SCAN[@]}")
sbom_rss=$(peak_mib "${SBOM[@]}")
scan_rss=$(peak_mib "${SCAN[@]}")
echo "sbom of the Debian minbase image ($packages packages): median ${sbom_ms} ms of $RUNS warm runs (target <= 300 ms), ${sbom_first_ms} ms for a first scan of the layer; peak RSS ${sbom_rss} MiB, plugin memory under the 256 MiB cap"
echo "scan of a 500-package SBOM against 200,000 records ($findings findings): median ${scan_ms} ms of $RUNS warm runs (target <= 1000 ms); peak RSS ${scan_rss} MiB, plugin memory under the 256 MiB cap"
