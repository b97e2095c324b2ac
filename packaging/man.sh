#!/usr/bin/env bash
# `make man`: renders docs/clamscanner.1 to target/man/ (text and the gzipped page the packages
# ship) and fails on any warning from groff (-ww) or man-db.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGE=docs/clamscanner.1
OUT=target/man
mkdir -p "$OUT"
warnings=$(groff -man -ww -z "$PAGE" 2>&1)
if [ -n "$warnings" ]; then
  printf 'groff -man -ww warns about %s:\n%s\n' "$PAGE" "$warnings" >&2
  exit 1
fi
MANWIDTH=80 man --warnings -E UTF-8 -l "$PAGE" >"$OUT/clamscanner.1.txt" 2>"$OUT/man-warnings.txt"
if [ -s "$OUT/man-warnings.txt" ]; then
  printf 'man -l warns about %s:\n' "$PAGE" >&2
  cat "$OUT/man-warnings.txt" >&2
  exit 1
fi
gzip -9n <"$PAGE" >"$OUT/clamscanner.1.gz"
echo "$OUT/clamscanner.1.txt"
