#!/usr/bin/env python3
"""Writes a realistic, finished disinfection log for the demo account.

    demo_log.py OUT N

N records, ids 1..N: steps in the five real states with home-relative file names (web files,
maildir messages, names with spaces, quotes and non-ASCII text), then a final done record, as
cPanel's disinfection task writes them (one JSON object per line).
"""
import json
import random
import sys

DIRS = ["public_html", "public_html/wp-content/uploads/2024/11", "public_html/images",
        "public_html/Café Menu", "public_html/фото", "mail/example.com/info/cur", "tmp"]
NAMES = ["index.php", "wp-config.php.suspected", "shell_%x.php", "thumb.jpg.php",
         'say "hi".html', "ファイル.js", "1700000000.M%dP42.host,S=2048:2,S"]
STATES = ["quarantined"] * 8 + ["deleted"] * 4 + ["no-action"] * 4 + ["error"] * 2 + ["mailbox-cleansed"]


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(42)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(1, n):
            name = rnd.choice(NAMES)
            if "%" in name:
                name = name % rnd.randrange(1 << 20)
            path = rnd.choice(DIRS) + "/" + name
            record = {"type": "step", "file": path, "state": rnd.choice(STATES)}
            if record["state"] == "error":
                record["message"] = "The system could not remove the “/home/demo/%s” file: Permission denied" % path
            elif record["state"] == "no-action":
                record["message"] = "No action specified for file."
            record["id"] = i
            f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        f.write(json.dumps({"type": "done", "state": "success", "id": n}, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
