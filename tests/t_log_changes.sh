#!/usr/bin/env bash
# A log rewritten while an answer streams (issue 9, item 11; SPEC §3): a writer truncates and
# rewrites the log at full speed while the CGI program streams a full read, paused mid-stream
# on a pipe the test stops reading until the writer has rewritten the log twice. Lines of the
# same lengths at the same offsets, and of changing lengths. Every answer must be valid JSON, and
# either one version's records (status 1) or status 0 with the "changed while it was read"
# error. The work is done by tests/log_changes.py; this turns its lines into checks.
source "$(dirname "$0")/lib.sh"
[ -x "$BIN" ] || { echo "FAIL: $BIN not built (make build)" >&2; exit 1; }
H=$WORK/home
make_account "$H" rewritten
for mode in same different; do
  while IFS=$'\t' read -r verdict what detail; do
    case $verdict in
      ok) pass "$what" ;;
      FAIL) fail "$what: $detail" ;;
      summary) echo "  $what: $detail" ;;
      exit) [ "$what" == 0 ] || fail "log_changes.py $mode exited $what" ;;
    esac
  done < <(python3 "$ROOT/tests/log_changes.py" --bin "$BIN" --home-root "$H" --user rewritten \
             --mode "$mode" --iterations "${CHANGES_ITERATIONS:-25}" --records 30000; echo "exit	$?")
done
finish
