#!/usr/bin/env bash
# Live writer (issue 5): a writer appends records in random pieces (1..4096 bytes, sometimes one
# byte at a time) while pollers loop with last_id through the CGI program and the listener. Each
# poller's concatenated details must equal the written log exactly, and a log restarted mid-poll
# (truncated, new run from id 1) must lose no record of the new run. The work is done by
# tests/live_writer.py; this script runs the processes and turns its verdicts into checks.
# LIVE_SEED=S reproduces a run's data; LIVE_RECORDS=N changes its size.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
HELPER=$ROOT/tests/live_writer.py
SEED=${LIVE_SEED:-$RANDOM}
RECORDS=${LIVE_RECORDS:-3000}
echo "  live writer: seed $SEED, $RECORDS records (LIVE_SEED=$SEED reproduces the data)"

H=$WORK/home
HTPASSWD=$WORK/htpasswd
mkdir -p "$H" && chmod 755 "$H"
for u in live restart; do
  make_account "$H" "$u"
  add_htpasswd "$HTPASSWD" "$u" "pw-$u"
done
start_listener --htpasswd "$HTPASSWD" --home-root "$H" --workers 4 || exit 1
POLLERS=cgi1,cgi2,cgi3,http1,http2,http3

# scenario NAME USER [WRITER_ARGS...]: one writer and six pollers on USER's log, then the verdicts.
scenario() {
  local name=$1 user=$2; shift 2
  local d=$WORK/$name pids=() p verdict what detail
  mkdir -p "$d"
  # The task sets its state file before the log exists, so no answer may say "none".
  printf 'running\n' >"$H/$user/$STATE_NAME"
  for p in cgi1 cgi2 cgi3; do
    # cgi2 asks for the flat envelope, as cPanel's HTTP server sends it.
    python3 "$HELPER" poll --dir "$d" --name "$p" --via cgi --bin "$BIN" --home-root "$H" \
      --user "$user" $([ "$p" = cgi2 ] && echo --envelope flat) &
    pids+=($!)
  done
  for p in http1 http2 http3; do
    python3 "$HELPER" poll --dir "$d" --name "$p" --via http --url "$LISTENER_URL" \
      --user "$user" --password "pw-$user" &
    pids+=($!)
  done
  on_exit "kill ${pids[*]} 2>/dev/null"
  python3 "$HELPER" write --dir "$d" --log "$H/$user/$LOG_NAME" --state "$H/$user/$STATE_NAME" \
    --seed "$SEED" --pollers "$POLLERS" "$@"
  for p in "${pids[@]}"; do wait "$p"; done
  python3 "$HELPER" verify --dir "$d" --pollers "$POLLERS" \
    $([ "$name" = restart ] && echo --restart) >"$d/verdicts" 2>&1
  while IFS=$'\t' read -r verdict what detail; do
    case $verdict in
      ok) check "$name: $what" true ;;
      FAIL) check "$name: $what: $detail" false ;;
      info) [ -z "${VERBOSE:-}" ] || echo "  info $name: $what" ;;
      *) check "$name: verifier output: $verdict $what" false ;;
    esac
  done <"$d/verdicts"
}

scenario live live --records "$RECORDS"
# Run 1 stops unfinished after 40% of the records; run 2 (all of them, done) starts at id 1.
scenario restart restart --records "$RECORDS" --restart-after $((RECORDS * 2 / 5))
finish
