"""`cockpit serve`: the same cockpit in a browser, through textual-serve.

Every browser connection runs its own `cockpit ui PATH` process, driven over a websocket. The server binds to
loopback unless told otherwise, and every page and websocket needs the token printed in the URL: the first
page load with `?token=` sets it as a cookie (HttpOnly, SameSite=Strict) that the page's websocket then
carries, so another site open in the same browser cannot drive the cockpit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from textual_serve.server import Server

COOKIE = "cockpit_token"
PROTECTED_PREFIXES = ("/ws", "/download")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(request: web.Request, token: str) -> bool:
    given = request.query.get("token") or request.cookies.get(COOKIE) or ""
    return hmac.compare_digest(given.encode(), token.encode())


class CockpitServer(Server):
    """textual-serve's server with the token check in front of the page, its websocket and downloads."""

    def __init__(self, command: str, *, host: str, port: int, token: str, title: str) -> None:
        shown_host = f"[{host}]" if ":" in host else host
        super().__init__(command, host=host, port=port, title=title, public_url=f"http://{shown_host}:{port}")
        self.token = token

    @property
    def url(self) -> str:
        return f"{self.public_url}/?token={self.token}"

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._check_token)
        return app

    @web.middleware
    async def _check_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        protected = path == "/" or path.startswith(PROTECTED_PREFIXES)
        if protected and not token_ok(request, self.token):
            return web.Response(status=403, text="cockpit: open the URL with its token (printed by "
                                                 "`cockpit serve`)\n")
        response = await handler(request)
        if path == "/" and request.query.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
        return response

    async def on_startup(self, app: web.Application) -> None:
        """Nothing yet: the socket is not bound until the app has started (see `serve`)."""

    def serve(self, debug: bool = False) -> None:
        """textual-serve's `serve`, saying where to point the browser once the socket listens."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                    print=lambda *_: self._listening())

    def _listening(self) -> None:
        # One line a person (or a test) can read: where to point the browser, now that it answers.
        print(f"cockpit: serving on {self.url}", flush=True)
        print("cockpit: press Ctrl+C to stop", flush=True)


def serve(path: Path, *, host: str, port: int, token: str | None = None) -> None:
    command = shlex.join([sys.executable, "-m", "cockpit", "ui", str(path)])
    server = CockpitServer(command, host=host, port=port, token=token or make_token(),
                           title=f"cockpit · {path.name}")
    server.serve()
