"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (standard library only).

Chromium reads NUL-terminated JSON messages on fd 3 and writes its replies and events on fd 4; no websocket, no
port, no extra package.  ``Browser`` opens one headless Chromium; ``Page`` drives one tab: navigate, evaluate
JavaScript in the page (the DOM is queried by the browser itself, not parsed here), click, resize, and count the
bytes the page transferred (``Network.loadingFinished.encodedDataLength``) and the requests it made.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--no-pings", "--mute-audio", "--disable-dev-shm-usage",
         # offline: nothing but the local server resolves
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def find_chromium() -> str | None:
    for c in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if c and Path(c).exists():
            return c
    return None


class CDPError(RuntimeError):
    pass


class Browser:
    def __init__(self, exe: str, timeout: float = 60.0):
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        r_ours, w_theirs = os.pipe()   # chromium writes on its fd 4
        r_theirs, w_ours = os.pipe()   # chromium reads on its fd 3
        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(r_theirs, 3), os.dup2(w_theirs, 4)))
        os.close(r_theirs)
        os.close(w_theirs)
        self.rfd, self.wfd = r_ours, w_ours
        self.timeout, self.buf, self.next_id, self.events = timeout, b"", 0, []

    # -- wire ---------------------------------------------------------------------------------------------
    def _read(self) -> dict:
        while b"\0" not in self.buf:
            chunk = os.read(self.rfd, 1 << 20)
            if not chunk:
                raise CDPError("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            m = self._read()
            if m.get("id") == mid:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)
        raise CDPError(f"{method}: no reply in {self.timeout} s")

    def pump(self, seconds: float) -> None:
        """Read events for ``seconds`` (the pipe is polled with select)."""
        import select
        end = time.time() + seconds
        while time.time() < end:
            if b"\0" in self.buf or select.select([self.rfd], [], [], max(0.0, end - time.time()))[0]:
                self.events.append(self._read())

    def new_page(self, width: int = 1400, height: int = 900) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session, width, height)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str, width: int, height: int):
        self.b, self.s = browser, session
        for domain in ("Page", "Runtime", "Network"):
            self.call(f"{domain}.enable")
        self.call("Network.setCacheDisabled", {"cacheDisabled": True})
        self.resize(width, height)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.b.send(method, params, self.s)

    def resize(self, width: int, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _mine(self):
        return [e for e in self.b.events if e.get("sessionId") == self.s]

    def goto(self, url: str, settle: float = 1.5, timeout: float = 60.0) -> dict:
        """Load ``url``; wait for the load event and until the network is quiet for ``settle`` s.  Returns
        ``{"bytes": transferred bytes, "requests": [urls], "failed": [urls], "exceptions": [uncaught script errors]}``."""
        self.b.events = [e for e in self.b.events if e.get("sessionId") != self.s]
        self.call("Page.navigate", {"url": url})
        end, loaded, quiet_since = time.time() + timeout, False, None
        while time.time() < end:
            n = len(self.b.events)
            self.b.pump(0.2)
            new = self.b.events[n:]
            loaded = loaded or any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == self.s
                                   for e in new)
            if any(e.get("sessionId") == self.s and e.get("method", "").startswith("Network.") for e in new):
                quiet_since = time.time()
            elif loaded and quiet_since is None:
                quiet_since = time.time()
            if loaded and quiet_since and time.time() - quiet_since >= settle:
                break
        ev = self._mine()
        requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
        nbytes = sum(e["params"].get("encodedDataLength", 0) for e in ev if e.get("method") == "Network.loadingFinished")
        failed_ids = {e["params"]["requestId"] for e in ev if e.get("method") == "Network.loadingFailed"}
        failed = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"
                  and e["params"]["requestId"] in failed_ids]
        status = {e["params"]["response"]["url"]: e["params"]["response"]["status"] for e in ev
                  if e.get("method") == "Network.responseReceived"}
        exceptions = [(e["params"]["exceptionDetails"].get("exception") or {}).get("description")
                      or e["params"]["exceptionDetails"].get("text") for e in ev
                      if e.get("method") == "Runtime.exceptionThrown"]
        return {"bytes": nbytes, "requests": requests, "failed": failed, "status": status, "exceptions": exceptions}

    def js(self, expression: str, wait: bool = True):
        """Evaluate ``expression`` in the page and return its value (JSON-serialisable results only)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": wait})
        if "exceptionDetails" in r:
            raise CDPError(f"{expression[:80]}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def settle(self, seconds: float = 0.5) -> None:
        self.b.pump(seconds)
