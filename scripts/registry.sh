# Sourced by the bench scripts: `start_registry DIR` serves a docker-registry on a free loopback port with
# its storage in DIR, waits (bounded) until it answers, and sets REG (host:port) and REG_PID. The caller's
# exit trap kills REG_PID.
start_registry() {
  local dir=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir"
  cat > "$dir/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  REG_PID=$!
  REG=127.0.0.1:$port
  for _ in $(seq 100); do
    curl -sf "http://$REG/v2/" >/dev/null && return 0
    sleep 0.1
  done
  echo "docker-registry did not answer on $REG within 10 s (log: $dir/registry.log)" >&2
  return 1
}
