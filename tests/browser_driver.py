#!/usr/bin/env python3
"""Drives the listener's progress page in headless Chromium while it plays the log writer.

    browser_driver.py --url URL --home DIR --workdir DIR [--screenshot FILE] [--size W,H] [--timeout S]

URL is the page (e.g. http://demo:demo@127.0.0.1:PORT/?interval=200), DIR the account's home
whose log this script writes in the real writer's shape, step by step, waiting for the page to
show each step before writing the next. It prints one JSON object of what the page showed
(and what the log says it should show); tests/t_browser.sh makes the assertions.
Talks to Debian's chromedriver over the W3C WebDriver HTTP API with the standard library only.
"""
import argparse, base64, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request

HOSTILE = "public_html/<img src=x onerror=alert(1)>.php"
DONE_MESSAGE = "Disinfection finished: 9 files handled, 1 error."
LOG, STATE = ".clamavconnector.disinfection.log", ".clamavconnector.disinfection.state"
STATES = ["quarantined", "deleted", "no-action", "error", "mailbox-cleansed"]

# What the page shows, read in one round trip.
SNAPSHOT_JS = """
const q = s => document.querySelector(s);
return {
  status: q('#banner').dataset.status, banner: q('#banner').textContent, error: q('#error').textContent,
  notes: Array.from(document.querySelectorAll('#notes li'), li => li.textContent),
  rows: Array.from(document.querySelectorAll('#steps tbody tr'), tr => Array.from(tr.cells, c => c.textContent)),
  counts: Object.fromEntries(Array.from(document.querySelectorAll('#counts li'),
    li => [li.dataset.state, Number(li.querySelector('.n').textContent)])),
  polling: document.body.dataset.polling, imgs: document.getElementsByTagName('img').length,
  title: document.title };
"""


def step(i, file, state, message=None):
    rec = {"type": "step", "file": file, "state": state}
    if message:
        rec["message"] = message
    rec["id"] = i  # the writer puts id last
    return rec


def line(rec):
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"


class WebDriver:
    def __init__(self, workdir, timeout, size):
        port = free_port()
        self.base = "http://127.0.0.1:%d" % port
        self.proc = subprocess.Popen(
            [os.environ.get("CHROMEDRIVER", "chromedriver"), "--port=%d" % port,
             "--log-path=" + os.path.join(workdir, "chromedriver.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:  # readiness: /status answers "ready"
            try:
                if self.call("GET", "/status").get("ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.05)
        profile = tempfile.mkdtemp(prefix="profile.", dir=workdir)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=" + size, "--user-data-dir=" + profile]
        caps = {"browserName": "chrome", "unhandledPromptBehavior": "ignore",
                "goog:chromeOptions": {"binary": os.environ.get("CHROMIUM", shutil.which("chromium") or "chromium"),
                                       "args": args}}
        self.sid = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:  # WebDriver errors come back as JSON with a status
            v = json.load(e)["value"]
            raise WebDriverError(v.get("error", "?"), v.get("message", ""))

    def s(self, method, path, body=None):
        return self.call(method, "/session/" + self.sid + path, body)

    def alert_text(self):
        try:
            return self.s("GET", "/alert/text")
        except WebDriverError as e:
            if e.args[0] == "no such alert":
                return None
            raise

    def close(self):
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class WebDriverError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--home", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--screenshot")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--size", default="1000,900", help="browser window WIDTH,HEIGHT")
    a = ap.parse_args()
    log, state = os.path.join(a.home, LOG), os.path.join(a.home, STATE)
    obs = {"timeouts": [], "alerts": [], "max_imgs": 0}
    wd = WebDriver(a.workdir, a.timeout, a.size)

    def snap():
        for _ in range(10):  # an alert can open between the two calls: note it, clear it, retry
            text = wd.alert_text()
            if text is not None:  # an alert means script ran from data
                obs["alerts"].append(text)
                wd.s("POST", "/alert/accept", {})
            try:
                v = wd.s("POST", "/execute/sync", {"script": SNAPSHOT_JS, "args": []})
            except WebDriverError as e:
                if e.args[0] == "unexpected alert open":
                    continue
                raise
            obs["max_imgs"] = max(obs["max_imgs"], v["imgs"])
            return v
        raise RuntimeError("alerts keep opening")

    def wait(name, pred):
        """Polls the DOM until pred(snapshot) holds or the deadline passes; returns the snapshot."""
        deadline = time.monotonic() + a.timeout
        while True:
            v = snap()
            if pred(v):
                return v
            if time.monotonic() > deadline:
                obs["timeouts"].append(name)
                return v
            time.sleep(0.05)

    def write(path, text, mode="w"):
        with open(path, mode, encoding="utf-8") as f:
            f.write(text)

    try:
        # 1. The log is a symbolic link: the API refuses it and the page must say so.
        for p in (log, state):
            if os.path.lexists(p):
                os.unlink(p)
        os.symlink("/etc/hostname", log)
        wd.s("POST", "/url", {"url": a.url})
        v = wait("api error shown", lambda v: v["error"] != "")
        obs["title"], obs["error_shown"] = v["title"], v["error"]

        # 2. Fixed, and queued: the error goes away and the banner says queued.
        os.unlink(log)
        write(state, "queued\n")
        v = wait("queued", lambda v: v["status"] == "queued" and v["error"] == "")
        obs["queued"] = [v["status"], v["error"]]

        # 3. A first run writes eight steps.
        run_a = [step(1, "public_html/wp-content/uploads/2024/11/shell_3fa1.php", "quarantined"),
                 step(2, "public_html/index.php", "no-action", "No action specified for file."),
                 step(3, "mail/example.com/info/cur/1717171717.M1P2.host,S=812:2,S", "deleted"),
                 step(4, HOSTILE, "quarantined"),
                 step(5, "public_html/фото/backdoor.jpg.php", "deleted"),
                 step(6, "tmp/c99.php", "error", "The system could not remove the \u201c/home/demo/tmp/c99.php\u201d file: Permission denied"),
                 step(7, "mail/example.com/info/inbox", "mailbox-cleansed"),
                 step(8, "public_html/wp-content/plugins/contact-form-7/includes/mailer_9c2e.php", "quarantined")]
        write(state, "running\n")
        write(log, "".join(map(line, run_a)))
        v = wait("run A rows", lambda v: len(v["rows"]) == 8)
        obs["run_a"] = {"rows": len(v["rows"]), "status": v["status"], "counts": v["counts"]}
        if a.screenshot:
            png = base64.b64decode(wd.s("GET", "/screenshot"))
            write(a.screenshot, "")  # create it as the caller, then fill it in
            with open(a.screenshot, "wb") as f:
                f.write(png)

        # 4. A later run replaces the log: the page must start over from its records (with a warning).
        run_b = [step(1, "public_html/cgi-bin/wso.php", "deleted"),
                 step(2, "public_html/Café Menu/upload.phtml", "quarantined"),
                 step(3, "mail/.Junk/cur/1700000000.M5P6.host,S=99:2,S", "mailbox-cleansed")]
        write(log + ".new", "".join(map(line, run_b)))
        os.rename(log + ".new", log)
        v = wait("restart", lambda v: [r[3] for r in v["rows"]] == ["1", "2", "3"] and v["notes"])
        obs["restart"] = {"ids": [r[3] for r in v["rows"]], "notes": v["notes"]}

        # 5. More steps, the hostile name among them, and a record still being written (no newline).
        more = [step(4, HOSTILE, "quarantined"),
                step(5, "public_html/it's here/x.ico", "no-action", "No action specified for file."),
                step(6, "Downloads/alfa.exe", "error", "The system failed to move the file: Operation not permitted"),
                step(7, "public_html/a=b/c=d/r57.php", "deleted")]
        done = [{"type": "issue", "state": "warning", "message": "One mailbox was busy; it was retried.", "id": 8},
                {"type": "done", "state": "success", "message": DONE_MESSAGE, "id": 9}]
        partial = line(done[0])
        write(log, "".join(map(line, more)) + partial[:20], "a")
        v = wait("more rows", lambda v: len(v["rows"]) == 7)
        obs["more"] = {"rows": len(v["rows"]), "status": v["status"]}

        # 6. The run finishes.
        write(log, partial[20:] + line(done[1]), "a")
        os.unlink(state)
        v = wait("done", lambda v: v["status"] == "done" and v["polling"] == "stopped")
        records = run_b + more + done
        obs["final"] = {"status": v["status"], "banner": v["banner"], "counts": v["counts"], "polling": v["polling"],
                        "ids": [r[3] for r in v["rows"]], "hostile_cells": [r[0] for r in v["rows"]].count(HOSTILE),
                        "error": v["error"]}
        obs["expected"] = {"ids": [str(r["id"]) for r in records], "done_message": DONE_MESSAGE,
                           "counts": {s: sum(1 for r in records if r["type"] == "step" and r["state"] == s)
                                      for s in STATES}}
        snap()  # one last look for an alert
    except Exception as e:  # still report what was seen so far
        obs["exception"] = "%s: %s" % (type(e).__name__, e)
    finally:
        wd.close()
    json.dump(obs, sys.stdout, ensure_ascii=False, sort_keys=True)
    print()
    return 1 if "exception" in obs else 0


if __name__ == "__main__":
    sys.exit(main())
