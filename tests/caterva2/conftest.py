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
import os
import shutil
import socket
import subprocess
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
import _fallback_codec

FALLBACK_CODEC = _fallback_codec.install()

CAT2_SERVER = os.environ.get("CAT2_SERVER") or shutil.which("cat2-server")
CAT2_ADMIN = os.environ.get("CAT2_ADMIN") or shutil.which("cat2-admin")
USER = "user@example.com"
PASSWORD = "foobar11"
SECRET = "b2store-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    public: Path
    state: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(base: Path, *, login: bool = False) -> Server:
    """Start ``cat2-server`` with its state in ``base`` and wait for its first answer."""
    if not CAT2_SERVER:
        pytest.skip("cat2-server is not installed: pip install caterva2[server]")
    state = base / "state"
    public = state / "public"
    public.mkdir(parents=True, exist_ok=True)
    conf = base / "caterva2-server.toml"
    conf.write_text(f"[server]\nlogin = {'true' if login else 'false'}\nregister = false\n")
    env = {k: v for k, v in os.environ.items() if k != "CATERVA2_SECRET"}
    if login:
        env["CATERVA2_SECRET"] = SECRET
        if not CAT2_ADMIN:
            pytest.skip("cat2-admin is not installed")
        subprocess.run(
            [CAT2_ADMIN, "--conf", str(conf), "--statedir", str(state), "adduser", USER, PASSWORD,
             "--superuser"],
            cwd=base, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CAT2_SERVER, "--conf", str(conf), "--statedir", str(state),
             "--listen", f"127.0.0.1:{port}"],
            cwd=base, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    server = Server(url=url, public=public, state=state, proc=proc, log=log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"cat2-server exited {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/api/roots", timeout=0.5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"cat2-server did not start in 60 s; see {log}")
        time.sleep(0.1)


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
