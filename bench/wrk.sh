# Requests per second under wrk for bench/run.sh (sourced; uses its RUN, RESULTS, BIN, die).
# The same request each time: user bench (Basic auth, bcrypt cost 4), the 1k-record log,
# last_id=999, so every answer carries one record. 64 keep-alive connections, 2 wrk threads
# on the same 2 cores as the server, so the numbers are the whole machine's, not the server's.

WRK_USER=bench
WRK_PASS=bench
WRK_AUTH=$(printf '%s:%s' "$WRK_USER" "$WRK_PASS" | base64)
WRK_QUERY=last_id=999

# wrk_check URL: one request by curl must give 200 and exactly record 1000, before wrk hammers it.
wrk_check() {
  local got
  got=$(curl -s -u "$WRK_USER:$WRK_PASS" -w '\n%{http_code}' "$1" \
    | jq -sr '"\(.[1]) \(.[0].result.data.details | map(.id) | join(","))"' 2>/dev/null)
  [ "$got" == "200 1000" ] || die "$1 answered [$got], want [200 1000]"
}

# run_wrk NAME URL: wrk's report goes into RESULTS as one JSON line (parsed by report.py).
run_wrk() {
  local cmd="wrk -t2 -c64 -d${WRK_SECONDS}s --latency -H 'Authorization: Basic $WRK_AUTH' '$2'"
  say "wrk $1"
  eval "$cmd" >"$RUN/$1.txt" 2>&1 || die "wrk failed: $(cat "$RUN/$1.txt")"
  cat "$RUN/$1.txt" >&2
  python3 -c 'import json,sys; print(json.dumps({"name": sys.argv[1], "command": sys.argv[2],
    "wrk": open(sys.argv[3]).read()}))' "$1" "$cmd" "$RUN/$1.txt" >>"$RESULTS"
}

bench_wrk_listener() {
  local pw=$RUN/htpasswd
  rm -f "$pw" && add_htpasswd "$pw" "$WRK_USER" "$WRK_PASS"
  start_listener --htpasswd "$pw" --home-root "$(home_root 1000)" 2>/dev/null \
    || die "listener did not start"
  local url=$LISTENER_URL/execute/ClamScanner/check_disinfection_status?$WRK_QUERY
  wrk_check "$url"
  run_wrk wrk-listener "$url"
  echo "{\"name\":\"listener-command\",\"command\":\"$BIN serve --listen 127.0.0.1:0 --htpasswd $pw --home-root $(home_root 1000)\"}" >>"$RESULTS"
  kill "$LISTENER_PID" 2>/dev/null
  wait "$LISTENER_PID" 2>/dev/null
}

# Apache configuration 1 of cgi-bin/apache-clamscanner.conf (Apache checks the password and
# sets REMOTE_USER), started by tests/apache_lib.sh exactly as tests/t_apache.sh does.
bench_wrk_apache() {
  if [ ! -x /usr/sbin/apache2 ] || [ ! -f "$ROOT/tests/apache_lib.sh" ]; then
    echo "bench: apache2 or tests/apache_lib.sh missing: Apache CGI skipped" >&2
    return 0
  fi
  source "$ROOT/tests/apache_lib.sh"
  local pw=$RUN/htpasswd cgi=$WORK/cgi
  apache_install_cgi "$cgi" || die "make install-cgi failed"
  apache_start 1 "$cgi" "$pw" "$pw" "$(home_root 1000)" || die "Apache did not start"
  local url=$APACHE_URL/cgi-bin/clamscanner/execute/ClamScanner/check_disinfection_status?$WRK_QUERY
  wrk_check "$url"
  run_wrk wrk-apache "$url"
  apache_stop
}
