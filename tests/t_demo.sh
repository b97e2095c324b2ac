#!/usr/bin/env bash
# `make run`'s demo account: made by the same target, it must give the answer the README
# promises to the curl line `make run` prints.
. "$(dirname "$0")/lib.sh"

D=$WORK/demo
check "make demo succeeds" make -s -C "$ROOT" demo DEMO="$D"
L=$D/home/demo/$LOG_NAME
expect_eq "120 records" 120 "$(wc -l < "$L")"
expect_jq "ends with done" "$(tail -n1 "$L")" '.type' done
start_listener --htpasswd "$D/htpasswd" --home-root "$D/home"
out=$(curl -s -u demo:demo "$LISTENER_URL/execute/ClamScanner/check_disinfection_status?last_id=95")
expect_jq "the printed curl line answers" "$out" '[.result.status, .result.data.status, (.result.data.details | length)] | join(" ")' "1 done 25"
code=$(curl -s -o /dev/null -w '%{http_code}' -u demo:demo "$LISTENER_URL/")
expect_eq "the page answers" 200 "$code"
line=$(make -s -C "$ROOT" -n run PORT=9999 DEMO="$D" | grep -o "curl -u demo:demo '[^']*'" | head -1)
expect_contains "make run prints the curl line" "http://127.0.0.1:9999/execute/ClamScanner/check_disinfection_status" "$line"
finish
