#!/bin/sh
# Time `lade dockerfile parse` (the embedded plugin, in its sandbox, warm compile cache) on a generated
# 1,000-line Dockerfile and on a 1-line one; the difference is the cost of parsing and planning the extra
# 999 lines inside the sandbox, plus moving the bigger result across the boundary and rendering it as text.
# Usage: plugins/dockerfile/bench.sh [path/to/lade] [runs]
set -eu
LADE=${1:-target/debug/lade}
RUNS=${2:-15}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/big" "$dir/small"
{
  echo '# syntax=docker/dockerfile:1'
  echo 'ARG BASE=alpine:3.20'
  echo 'FROM ${BASE} AS build'
  echo 'ARG VERSION=1.0'
  i=0
  while [ $i -lt 143 ]; do
    echo "ENV V$i=\"value \$VERSION\" P$i=/opt/\${VERSION%%.*}/$i"
    echo "RUN --mount=type=cache,target=/root/.cache make -C pkg$i \\"
    echo "    VERSION=\${VERSION} build-$i"
    echo "COPY --chown=1000:1000 pkg$i/ /src/pkg$i/"
    echo "LABEL stage.$i=\"built \$VERSION\""
    echo "WORKDIR /src/pkg$i"
    echo "# comment $i"
    i=$((i+1))
  done
  echo 'FROM scratch'
  echo 'COPY --from=build /src /src'
} > "$dir/big/Containerfile"
lines=$(wc -l < "$dir/big/Containerfile")
echo 'FROM scratch' > "$dir/small/Containerfile"
"$LADE" dockerfile parse --format json "$dir/big" > /dev/null   # fill the compile cache
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {
  n=0
  while [ $n -lt "$RUNS" ]; do
    s=$(date +%s%N); "$LADE" dockerfile parse "$1" > /dev/null; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
    n=$((n+1))
  done | median
}
# The in-process figure: lade logs the frontend call's duration (instantiation included) at debug level.
in_sandbox() {
  n=0
  while [ $n -lt "$RUNS" ]; do
    "$LADE" --log-level debug dockerfile parse "$1" 2>&1 >/dev/null | sed -n 's/.* in \([0-9.]*\) ms, instantiation included.*/\1/p'
    n=$((n+1))
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
echo "frontend call inside the sandbox (median of $RUNS, ms): 1,000-line file $(in_sandbox "$dir/big"), 1-line file $(in_sandbox "$dir/small")"
big=$(time_runs "$dir/big")
small=$(time_runs "$dir/small")
echo "lines: $lines; median wall time (us): 1,000-line file $big, 1-line file $small; difference $((big - small)) us"
