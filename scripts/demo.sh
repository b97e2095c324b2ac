#!/usr/bin/env bash
# Prepares the demo account for `make run`: DIR/home/demo with a finished 120-record log, and
# DIR/htpasswd with the entry demo:demo (bcrypt, made by the program itself, so Apache's
# htpasswd tool is not needed).
set -eu
dir=${1:?usage: demo.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/home/demo"
python3 "$here/demo_log.py" "$dir/home/demo/.clamavconnector.disinfection.log" 120
rm -f "$dir/home/demo/.clamavconnector.disinfection.state"
printf 'demo\n' | "$here/../target/debug/clamscanner" htpasswd --cost 5 demo > "$dir/htpasswd"
echo "Demo account: $dir/home/demo (user demo, password demo), 120 records, finished."
