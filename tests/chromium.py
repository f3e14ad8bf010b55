"""Headless Chromium driven over the DevTools protocol, for the book's browser test.

    with Browser() as browser:
        page = browser.visit(Path("index.html").resolve().as_uri())   # title, images, links
        browser.screenshot("shot.png", width=390, height=844, mobile=True)

Offline and without a driver binary: Debian's ``chromium`` package and ``websocket-client``.
Run as a script it takes the screenshots a person looks at:
``python tests/chromium.py build/book/_build/html OUT_DIR``.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-extensions", "--disable-dev-shm-usage", "--remote-allow-origins=*",
         "--remote-debugging-port=0", "--hide-scrollbars")

#: Waits until every image has loaded or failed (lazy ones are made eager first), then
#: returns what the test checks: each image's source and natural width, every link.
PAGE_REPORT = """
new Promise(resolve => {
  const images = [...document.images];
  images.forEach(i => { i.loading = "eager"; });
  const settled = images.map(i => i.complete ? Promise.resolve() :
      new Promise(done => { i.addEventListener("load", done); i.addEventListener("error", done); }));
  Promise.all(settled).then(() => resolve({
    title: document.title,
    images: images.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth})),
    links: [...document.querySelectorAll("a[href]")].map(a => a.href),
    search: !!document.querySelector("form[action*='search'] input, input[name='q']"),
    text: document.body ? document.body.innerText.length : 0,
  }));
})
"""


def chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page, talked to over a DevTools WebSocket."""

    def __init__(self, width: int = 1366, height: int = 900, timeout: float = 60.0):
        import websocket

        executable = chromium()
        if executable is None:
            raise RuntimeError("no chromium executable on PATH")
        self.profile = Path(tempfile.mkdtemp(prefix="cxr-chromium-"))
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.timeout = timeout
        port = self._port()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                    pages = [t for t in json.load(reply) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium opened no page")
            time.sleep(0.2)
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"],
                                                  timeout=timeout, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _port(self) -> int:
        path = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (path.is_file() and path.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start (exit {self.process.poll()})")
            time.sleep(0.1)
        return int(path.read_text().split()[0])

    def call(self, method: str, **params: Any) -> dict:
        """Send one DevTools command and return its result (events seen meanwhile are kept)."""
        self._id += 1
        self.socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> dict:
        """The first event of that name since the last wait (waits for it if needed)."""
        deadline = time.monotonic() + self.timeout
        while True:
            for index, message in enumerate(self.events):
                if message.get("method") == event:
                    del self.events[: index + 1]
                    return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {self.timeout} s")
            self.events.append(json.loads(self.socket.recv()))

    def visit(self, url: str) -> dict:
        """Load ``url`` and return the page's report (``PAGE_REPORT``) and its HTTP-less
        load errors (``errorText`` from navigation)."""
        self.events.clear()
        navigation = self.call("Page.navigate", url=url)
        if navigation.get("errorText"):
            return {"error": navigation["errorText"]}
        self.wait_for("Page.loadEventFired")
        return self.evaluate(PAGE_REPORT)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: str | Path, width: int, height: int, mobile: bool = False) -> Path:
        """A PNG of the current page's first screen at that viewport size."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        time.sleep(0.5)  # let the layout settle after the resize
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SCREENS = {"laptop": (1366, 900, False), "phone": (390, 844, True)}


def screenshots(html: Path, out: Path, pages: tuple[str, ...] = (
        "index.html", "chapters/01_data_exploration.html", "chapters/04_comparisons.html")) -> list[Path]:
    """Screenshots of ``pages`` at a laptop's and a phone's width."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with Browser() as browser:
        for page in pages:
            for screen, (width, height, mobile) in SCREENS.items():
                browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                             deviceScaleFactor=1, mobile=mobile)
                browser.visit((html / page).resolve().as_uri())
                name = page.replace("/", "_").removesuffix(".html")
                made.append(browser.screenshot(out / f"{name}-{screen}.png", width, height, mobile))
                if browser.evaluate("document.querySelectorAll('main img').length"):
                    browser.evaluate("document.querySelectorAll('main img')[0].scrollIntoView()")
                    made.append(browser.screenshot(out / f"{name}-{screen}-figure.png", width,
                                                   height, mobile))
    return made


if __name__ == "__main__":
    for shot in screenshots(Path(sys.argv[1]), Path(sys.argv[2])):
        print(shot)
    os._exit(0)
