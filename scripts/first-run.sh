#!/usr/bin/env bash
# The first ten minutes, measured (issue 23): a fresh clone of this repository, `npm install`, a production
# install made from it, and the service started as `npm start` runs it: on PGlite (first and next start) and
# on PostgreSQL. Prints install time, warnings, node_modules sizes, time to /healthz, and RSS at rest after
# start and after a send-out of 10,000 (into Postfix's smtp-sink); on PGlite against a bare PGlite opened on a
# copy of the same folder in the same run. Each figure against its target; exits 1 when one is above it.
# FIRST_RUN_REPORT_ONLY=1 prints the figures and exits 0. `.ci/run` runs it (about 5 minutes).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
db="oneletter_first_run_$$"
token="first-run-token-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
failed=0
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql -q "$admin_url" -c "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

rows=()
row() { # name, figure, target, unit
  local verdict=ok
  if awk "BEGIN { exit !($2 > $3) }"; then verdict=ABOVE; failed=1; fi
  rows+=("$(printf '| %-46s | %8.1f %-3s | %6s %-3s | %-5s |' "$1" "$2" "$4" "$3" "$4" "$verdict")")
}
check() { # name, command…: a line that passes or fails
  local name=$1 verdict=ok
  shift
  "$@" >"$work/check.log" 2>&1 || { verdict=FAILED; failed=1; cat "$work/check.log" >&2; }
  rows+=("$(printf '| %-46s | %12s | %10s | %-5s |' "$name" '' '' "$verdict")")
}
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
rss_of() { awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

git clone -q "$repo" "$work/oneletter"
cd "$work/oneletter"
start=$(now)
npm install --no-audit --no-fund >"$work/install.log" 2>&1
install_s=$(since "$start")
warnings=$(grep -c '^npm warn' "$work/install.log" || true)
modules_mb=$(du -sm node_modules | cut -f1)
npm run build --silent

# A production install as the README's Deploy says to build elsewhere: the build and the package files,
# `npm ci --omit=dev`; then `npm start` and a CLI command from it.
prod="$work/production"
mkdir "$prod"
cp -r package.json package-lock.json dist drizzle templates scripts "$prod/"
(cd "$prod" && npm ci --omit=dev --no-audit --no-fund >"$work/production.log" 2>&1)
prod_mb=$(du -sm "$prod/node_modules" | cut -f1)

# `npm start`'s command (node options included), run without npm in between: the process measured is the
# service itself, as bench/support.ts does.
read -r -a start_cmd < <(node -p "require('./package.json').scripts.start")
[ "${start_cmd[0]}" = node ] || { echo "npm start no longer starts with node: ${start_cmd[*]}" >&2; exit 1; }

# Starts the service in the folder $1 with the environment that follows, waits for /healthz; sets
# $service (its pid), $base and $ready (seconds to /healthz).
start_service() {
  local dir=$1 port t0
  shift
  port=$((20000 + RANDOM % 20000))
  t0=$(now)
  (cd "$dir" && exec env PORT="$port" PUBLIC_URL="http://localhost:$port" PUBLISHER_TOKEN="$token" \
    MAIL_FROM='Essays <essays@example.test>' "$@" "${start_cmd[@]}" >>"$work/service.log" 2>&1) &
  service=$!
  pids+=("$service")
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  ready=$(since "$t0")
  curl -sf "$base/healthz" >/dev/null || { echo "the service did not start:" >&2; tail -20 "$work/service.log" >&2; exit 1; }
}
stop_service() { kill "$service"; wait "$service" 2>/dev/null || true; }

# RSS at rest: a minute after the last work (a sample at 2 s after start is ~10 MB higher). The service gives
# back what a send-out grew 20–30 s after it (src/entry/rest.ts; docs/performance.md, Memory).
rss_at_rest() {
  sleep 60
  rss_of "$service"
}

# 10,000 confirmed readers imported through the API, an essay published, its send-out followed to the end.
send_out_10000() {
  local auth="authorization: Bearer $token" status=""
  { echo email,status; seq 1 10000 | awk '{ print "reader-" $1 "@example.test,subscribed" }'; } >"$work/readers.csv"
  curl -sf -X POST "$base/api/subscribers/import" -H "$auth" -H 'content-type: text/csv' \
    --data-binary @"$work/readers.csv" >/dev/null
  curl -sf -X POST "$base/api/essays" -H "$auth" -H 'content-type: application/json' \
    -d '{"slug":"first-run","title":"First run","url":"https://example.test/first-run"}' >/dev/null
  for _ in $(seq 1 600); do
    status=$(curl -sf "$base/api/essays/first-run" -H "$auth" | jq -r '.sendout.status + " " + (.sendout.sent | tostring)')
    [ "$status" = "done 10000" ] && break
    sleep 0.5
  done
  [ "$status" = "done 10000" ] || { echo "the send-out did not end: $status" >&2; exit 1; }
}

# A bare PGlite (as the service opens it: with pg_trgm) on a copy of the folder $1, one query, at rest 2 s.
bare_pglite_rss() {
  rm -rf "$work/bare"
  cp -r "$1/pg" "$work/bare"
  node --input-type=module -e "
    import { readFileSync } from 'node:fs';
    import { PGlite } from '@electric-sql/pglite';
    import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
    const db = new PGlite('$work/bare', { extensions: { pg_trgm } });
    await db.query('select count(*) from subscribers');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    console.log(Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024));
    process.exit(0);"
}

sink_port=$((20000 + RANDOM % 20000))
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u nobody)
/usr/sbin/smtp-sink "${sink_user[@]}" 127.0.0.1:"$sink_port" 1024 &
pids+=("$!")
smtp="smtp://127.0.0.1:$sink_port"

# PGlite: the first start sets the database up; the next ones open it.
data="$work/data"
start_service . DATA_DIR="$data"
pglite_first=$ready
stop_service
bare_start=$(bare_pglite_rss "$data")
start_service . DATA_DIR="$data" SMTP_URL="$smtp"
pglite_next=$ready
pglite_rss=$(rss_at_rest)
send_out_10000
pglite_sent_rss=$(rss_at_rest)
stop_service
bare_sent=$(bare_pglite_rss "$data")

psql -q "$admin_url" -c "create database $db" >/dev/null
pg_url="${admin_url%/*}/$db"
start_service . DATABASE_URL="$pg_url" # migrates
stop_service
start_service . DATABASE_URL="$pg_url" SMTP_URL="$smtp"
pg_start=$ready
pg_rss=$(rss_at_rest)
send_out_10000
pg_sent_rss=$(rss_at_rest)
stop_service

start_service "$prod" DATA_DIR="$work/production-data"
prod_start=$ready
check 'production install: a CLI command runs' \
  env -C "$prod" PUBLIC_URL="$base" PUBLISHER_TOKEN="$token" npm run --silent cli -- stats
stop_service
check 'production install: no tsx, no esbuild' test ! -e "$prod/node_modules/tsx" -a ! -e "$prod/node_modules/esbuild"

row 'npm install (s)' "$install_s" 600 s
row 'npm install warnings' "$warnings" 0 ''
row 'node_modules' "$modules_mb" 250 MB
row 'production install: node_modules' "$prod_mb" 80 MB
row 'production install: first start on PGlite' "$prod_start" 7 s
row 'first start on PGlite, to /healthz' "$pglite_first" 7 s
row 'next start on PGlite' "$pglite_next" 3 s
row 'start on PostgreSQL' "$pg_start" 2 s
row 'RSS at rest, PostgreSQL, after start' "$pg_rss" 80 MB
row 'RSS at rest, PostgreSQL, after 10,000 sent' "$pg_sent_rss" 80 MB
row "RSS at rest, PGlite, after start (bare $bare_start)" "$((pglite_rss - bare_start))" 40 MB
row "RSS at rest, PGlite, after 10,000 sent (bare $bare_sent)" "$((pglite_sent_rss - bare_sent))" 40 MB
echo "PGlite RSS at rest: after start $pglite_rss MB, after 10,000 sent $pglite_sent_rss MB (the rows: above a bare PGlite)"
echo '| figure                                         |     measured | target     |       |'
echo '|------------------------------------------------|--------------|------------|-------|'
printf '%s\n' "${rows[@]}"
[ "${FIRST_RUN_REPORT_ONLY:-}" = 1 ] && exit 0
exit "$failed"
