#!/usr/bin/env bash
# The first ten minutes, measured (issue 23): a fresh clone of this repository, `npm install`, and `npm start`
# on PGlite (first and second start) and on PostgreSQL. Prints install time, warnings, node_modules size,
# time to /healthz and RSS at rest, each against its target, and exits 1 when one is above it.
# FIRST_RUN_REPORT_ONLY=1 prints the figures and exits 0 (until every target is met, .ci/run does not call it).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
db="oneletter_first_run_$$"
failed=0
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  psql -q "$admin_url" -c "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

row() { # name, figure, target, unit
  local verdict=ok
  if awk "BEGIN { exit !($2 > $3) }"; then verdict=ABOVE; failed=1; fi
  printf '| %-38s | %10.1f %-3s | %8s %-3s | %-5s |\n' "$1" "$2" "$4" "$3" "$4" "$verdict"
}

git clone -q "$repo" "$work/oneletter"
cd "$work/oneletter"
start=$(date +%s.%N)
npm install --no-audit --no-fund >"$work/install.log" 2>&1
install_s=$(echo "$(date +%s.%N) - $start" | bc)
warnings=$(grep -c '^npm warn' "$work/install.log" || true)
modules_mb=$(du -sm node_modules | cut -f1)

# Starts the service with the given environment, waits for /healthz, prints seconds to ready and RSS (MiB).
start_service() {
  local t0 ready rss pid
  t0=$(date +%s.%N)
  env PORT="$port" PUBLIC_URL="http://localhost:$port" "$@" node dist/entry/node.js >"$work/start.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  ready=$(echo "$(date +%s.%N) - $t0" | bc)
  sleep 2
  pid=$server_pid
  rss=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  server_pid=""
  echo "$ready $rss"
}

npm run build --silent
read -r pglite_first pglite_first_rss < <(start_service)
read -r pglite_again pglite_rss < <(start_service)
psql -q "$admin_url" -c "create database $db" >/dev/null
pg_url="${admin_url%/*}/$db"
start_service DATABASE_URL="$pg_url" >/dev/null # migrates
read -r pg_start pg_rss < <(start_service DATABASE_URL="$pg_url")

echo '| figure                                 |     measured   |   target     |       |'
echo '|----------------------------------------|----------------|--------------|-------|'
row 'npm install (s)' "$install_s" 600 s
row 'npm install warnings' "$warnings" 0 ''
row 'node_modules' "$modules_mb" 250 MB
row 'first start on PGlite, to /healthz' "$pglite_first" 7 s
row 'next start on PGlite' "$pglite_again" 3 s
row 'start on PostgreSQL' "$pg_start" 2 s
# The issue's target is a bare PGlite on a copy of the folder + 40 MB; a bare PGlite 0.5 held ~280 MB here.
row 'RSS at rest, PGlite' "$pglite_rss" 320 MB
row 'RSS at rest, PostgreSQL' "$pg_rss" 80 MB
[ "${FIRST_RUN_REPORT_ONLY:-}" = 1 ] && exit 0
exit "$failed"
