"""`cockpit serve` end to end: a real server, Debian's headless Chromium driven by Playwright, a real daemon.

The page loads only with the URL's token, a key pressed in the browser approves a task, the daemon records it.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cockpit_testkit.daemons import cli_json
from tests.tui.conftest import Workspace

Build = Callable[..., Workspace]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
START_S = 90.0
APPROVE_S = 120.0

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("tmux") is None,
                                reason="needs Debian's chromium (scripts/test installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(path: Path) -> Iterator[str]:
    """Run `cockpit serve PATH` on a free loopback port; yield the URL it prints (with its token)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "serve", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    def read() -> None:
        for line in proc.stdout or []:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_S
        url = ""
        while not url:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, "cockpit serve did not start"
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=min(1.0, remaining))
                if "serving on " in line:
                    url = line.split("serving on ", 1)[1].strip()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.timeout(400)
def test_serve_loads_with_its_token_and_a_key_in_the_browser_approves(
    workspace: Build, short_tmp: Path
) -> None:
    from playwright.sync_api import sync_playwright

    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = cli_json("task", "create", "Add an /export endpoint to the API", "--force", repo=repo)
    assert cli_json("task", "show", str(task["id"]), repo=repo)["state"] == "pending"
    with serving(ws.root) as url:
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base = url.split("?", 1)[0]
        assert status(base) == 403, "no token, no cockpit"
        assert status(base + "?token=wrong") == 403
        assert status(url) == 200
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                page.wait_for_selector("canvas", timeout=START_S * 1000)
                page.focus("textarea")  # xterm.js reads keys from its hidden textarea
                deadline = time.monotonic() + APPROVE_S
                state = "pending"
                while state == "pending":
                    assert time.monotonic() < deadline, "the key pressed in the browser never approved it"
                    # Until the app in the page has loaded its tasks a key finds nothing to approve.
                    page.keyboard.press("a")
                    page.wait_for_timeout(1000)
                    state = cli_json("task", "show", str(task["id"]), repo=repo)["state"]
                page.screenshot(path=str(short_tmp / "serve.png"))
            finally:
                browser.close()
    assert state in ("approved", "executing", "gating", "awaiting_review")
    shown = cli_json("task", "show", str(task["id"]), repo=repo)
    assert shown["approved_by"] == "person"
