"""Fixtures for the Caterva2 filesystem tests: real ``cat2-server`` processes and a fault proxy.

* ``cat2_server`` (session): ``login = false`` server on a free 127.0.0.1 port; files written into
  ``public`` are served as ``@public/<relpath>`` at once (the server re-reads its folder).
* ``cat2_auth_server`` (session): ``login = true`` with one user created by ``cat2-admin``.
* ``fault_proxy``: a threaded HTTP proxy in front of ``cat2_server`` that injects faults (500 plus
  dropped connection, reset, slow answer, truncated body) following a per-test plan.
* ``so``: storage options with a per-test cache folder.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _c2server import Server, start_server


@pytest.fixture(scope="session")
def cat2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("cat2"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cat2_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("cat2auth"), login=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def so(tmp_path: Path) -> dict[str, Any]:
    """Storage options: a fresh cache folder per test, quick retries."""
    return {"cache_storage": str(tmp_path / "cache"), "backoff": 0.01, "skip_instance_cache": True}


# -- fault-injecting proxy -------------------------------------------------------------------------


@dataclass
class FaultProxy:
    """Forwards GETs to ``upstream``; ``plan(n, path)`` names a fault for request number n.

    Faults: ``None`` (forward), ``"500"`` (500 then close the connection), ``"reset"`` (close
    without answering), ``"slow"`` (sleep ``delay`` s, then forward), ``"truncate"`` (announce the
    full length, send half the body, close).
    """

    upstream: str
    public: Path = Path()
    url: str = ""
    delay: float = 3.0
    plan: Callable[[int, str], str | None] = lambda n, path: None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    client = httpx.Client(timeout=30)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with proxy.lock:
                n = len(proxy.requests)
                proxy.requests.append(self.path)
            fault = proxy.plan(n, self.path)
            if fault == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault == "500":
                body = b"Internal Server Error"
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True
                return
            if fault == "slow":
                time.sleep(proxy.delay)
            r = client.get(proxy.upstream + self.path)
            body = r.content
            self.send_response(r.status_code)
            for k in ("Content-Type", "ETag"):
                if k in r.headers:
                    self.send_header(k, r.headers[k])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if fault == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def fault_proxy(cat2_server: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream=cat2_server.url, public=cat2_server.public)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    httpd.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
