#!/usr/bin/env bash
# The listener's progress page (GET /) in a real browser: headless Chromium driven through Debian's
# chromedriver by tests/browser_driver.py, which also plays the disinfection writer (it appends the
# next records only once the page shows the previous ones). Runs once per envelope form.
#   SCREENSHOT=docs/progress-page.png bash tests/t_browser.sh   also refreshes the README screenshot.
source "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  skip_test "chromium or chromedriver is not installed"
fi

add_htpasswd "$WORK/htpasswd" demo demo

for envelope in wrapped flat; do
  root=$WORK/$envelope
  make_account "$root" demo
  if ! start_listener --htpasswd "$WORK/htpasswd" --home-root "$root" --envelope "$envelope"; then
    fail "$envelope: listener starts"
    continue
  fi
  hostport=${LISTENER_URL#http://}
  hostport=${hostport%%/*}

  if [ "$envelope" = wrapped ]; then
    # The page itself: behind the same authentication, served verbatim as HTML.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$hostport/")
    expect_eq "page without credentials is refused" 401 "$code"
    headers=$(curl -s -u demo:demo -D - -o "$WORK/page.html" "http://$hostport/")
    expect_contains "page is HTML" "Content-Type: text/html; charset=utf-8" "$headers"
    check "page is served verbatim from src/page.html" cmp -s "$ROOT/src/page.html" "$WORK/page.html"
  fi

  # Opened with credentials in the URL, as a person would paste it; 200 ms polls keep the test short.
  shot=
  [ "$envelope" = wrapped ] && shot=${SCREENSHOT:-}
  out=$(python3 "$ROOT/tests/browser_driver.py" --url "http://demo:demo@$hostport/?interval=200" \
    --home "$root/demo" --workdir "$WORK" ${shot:+--screenshot "$shot"} 2>"$WORK/driver.err")
  rc=$?
  expect_eq "$envelope: driver ran" 0 "$rc"
  [ "$rc" -eq 0 ] || cat "$WORK/driver.err" >&2
  if ! is_json "$out"; then
    fail "$envelope: driver printed no observations"
    continue
  fi
  e=$envelope
  expect_jq "$e: every awaited state was reached" "$out" '.timeouts | join(", ")' ""
  expect_jq "$e: page title" "$out" '.title' "Disinfection progress"
  expect_jq "$e: API error (log is a symlink) is shown" "$out" '.error_shown | startswith("API error: ")' true
  expect_jq "$e: queued banner, error cleared" "$out" '.queued | join("|")' "queued|"
  expect_jq "$e: first run, rows" "$out" '.run_a.rows' 8
  expect_jq "$e: first run, banner" "$out" '.run_a.status' running
  expect_jq "$e: first run, counts" "$out" '.run_a.counts | [.quarantined, .deleted, ."no-action", .error, ."mailbox-cleansed"] | join(",")' "3,2,1,1,1"
  expect_jq "$e: restarted log clears the table" "$out" '.restart.ids | join(",")' "1,2,3"
  expect_jq "$e: restart warning is shown" "$out" '.restart.notes | length > 0 and (.[0] | startswith("warning: "))' true
  expect_jq "$e: rows appear while running (partial line not shown)" "$out" '.more | "\(.rows) \(.status)"' "7 running"
  expect_jq "$e: banner ends at done" "$out" '.final.status' done
  expect_jq "$e: done banner has the done record's state" "$out" '.final.banner | startswith("Done: success")' true
  expect_contains "$e: done message in banner" "$(jqv "$out" '.expected.done_message')" "$(jqv "$out" '.final.banner')"
  expect_jq "$e: polling stopped" "$out" '.final.polling' stopped
  expect_jq "$e: one row per record, in order" "$out" '.final.ids == .expected.ids' true
  expect_jq "$e: counts match the log" "$out" '.final.counts == .expected.counts' true
  expect_jq "$e: no error left" "$out" '.final.error' ""
  expect_jq "$e: hostile file name shown as text" "$out" '.final.hostile_cells' 1
  expect_jq "$e: no img element was created" "$out" '.max_imgs' 0
  expect_jq "$e: no alert was raised" "$out" '.alerts | length' 0
  # An <img src=x> parsed as HTML would have asked the listener for /x.
  expect_not_contains "$e: no request for the img source" " /x " "$(cat "$LISTENER_LOG")"
  kill "$LISTENER_PID" 2>/dev/null
  wait "$LISTENER_PID" 2>/dev/null
done
[ -z "${SCREENSHOT:-}" ] || echo "screenshot written to $SCREENSHOT"
finish
