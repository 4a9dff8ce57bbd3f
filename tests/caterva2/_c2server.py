"""A ``cat2-server`` process for tests and benchmarks: start on a free 127.0.0.1 port, stop.

Used by conftest.py (fixtures) and by tests that need a server of their own (e.g. one to stop
mid-read). ``login=True`` creates one user with ``cat2-admin`` first; :func:`add_user` adds
another to a running server, :func:`login` returns a session token of a user.
:func:`public_folder` and :func:`shared_array` publish test datasets on a running server.
:class:`FaultProxy` with :func:`proxy_handler` is an HTTP proxy in front of one
that injects faults and records the requests (the ``fault_proxy`` fixture, the TLS test).
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import blosc2
import httpx
import numpy as np
import pytest

CAT2_SERVER = os.environ.get("CAT2_SERVER") or shutil.which("cat2-server")
CAT2_ADMIN = os.environ.get("CAT2_ADMIN") or shutil.which("cat2-admin")
USER = "user@example.com"
PASSWORD = "foobar11"
SECRET = "b2store-test-secret"
START_TIMEOUT = 120  # seconds for a cat2-server to answer its first request
ADMIN_TIMEOUT = 300  # seconds for one cat2-admin command


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
    public = base / "state" / "public"
    public.mkdir(parents=True, exist_ok=True)
    conf = base / "caterva2-server.toml"
    conf.write_text(f"[server]\nlogin = {'true' if login else 'false'}\nregister = false\n")
    env = {k: v for k, v in os.environ.items() if k != "CATERVA2_SECRET"}
    if login:
        env["CATERVA2_SECRET"] = SECRET
        _admin(base, "adduser", USER, PASSWORD, "--superuser")
    for _attempt in range(3):
        server = _launch(base, conf, env)
        if server is not None:
            return server
    raise RuntimeError(f"cat2-server found no free port in 3 attempts; see {base}/server.log")


def _launch(base: Path, conf: Path, env: dict[str, str]) -> Server | None:
    """Start the server on a free port; ``None`` when another process took the port first
    (``_free_port`` closes its probe socket before the server binds: a parallel test session
    may bind it in between, and then answer the readiness probe in our server's stead)."""
    state = base / "state"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CAT2_SERVER or "cat2-server", "--conf", str(conf), "--statedir", str(state),
             "--listen", f"127.0.0.1:{port}"],
            cwd=base, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    server = Server(url=url, public=state / "public", state=state, proc=proc, log=log)
    # ~2 s on an idle machine, 10 s and more on a loaded 2-core one (imports dominate)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            if "address already in use" in log.read_text(errors="replace").lower():
                return None
            raise RuntimeError(f"cat2-server exited {proc.returncode}; see {log}")
        try:
            if _answers_as(url, state):
                return server
        except (httpx.TransportError, ValueError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"cat2-server did not start in {START_TIMEOUT} s; see {log}")
        time.sleep(0.1)


def _answers_as(url: str, state: Path) -> bool:
    """Whether the server at ``url`` is up and is the one with ``state``: its peer id is the
    one it wrote there at start (another process on the port has another one). A server
    without ``/api/peer`` (older caterva2) is taken at its word once ``/api/roots`` answers."""
    r = httpx.get(f"{url}/api/peer", timeout=2)
    if r.status_code == 404:
        return httpx.get(f"{url}/api/roots", timeout=2).status_code == 200
    idfile = state / "peer_id"
    ours = idfile.read_text().strip() if idfile.exists() else ""
    return r.status_code == 200 and bool(ours) and r.json().get("peer_id") == ours


def _admin(base: Path, *args: str) -> None:
    """Run ``cat2-admin <args>`` on the server state in ``base``; a failure names its output."""
    if not CAT2_ADMIN:
        pytest.skip("cat2-admin is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATERVA2_")}
    env["CATERVA2_SECRET"] = SECRET
    command = [CAT2_ADMIN, "--conf", str(base / "caterva2-server.toml"), "--statedir",
               str(base / "state"), *args]  # fmt: skip
    # about 3 s idle (imports), 10 s and more under load: a wide margin for a loaded CI machine
    res = subprocess.run(command, cwd=base, env=env, capture_output=True, timeout=ADMIN_TIMEOUT)
    if res.returncode != 0:  # CalledProcessError's message would leave out why
        output = (res.stdout + res.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"cat2-admin {args[0]} exited {res.returncode}:\n{output}")


def add_user(server: Server, email: str, password: str) -> None:
    """Create a user (no files, no personal folder) on a running ``login = true`` server."""
    _admin(server.state.parent, "adduser", email, password)


def login(server: Server, email: str = USER, password: str = PASSWORD) -> str:
    """Log ``email`` in on a ``login = true`` server; the session token (``c2subauth`` cookie)."""
    r = httpx.post(f"{server.url}/auth/jwt/login",
                   data={"username": email, "password": password}, timeout=30)  # fmt: skip
    assert r.status_code == 204, r.text
    return str(r.cookies["c2subauth"])


class Publishes(Protocol):
    """A :class:`Server`, or the fault proxy in front of one: its ``public`` folder and the
    ``host`` to read it through."""

    public: Path

    @property
    def host(self) -> str: ...


def public_folder(server: Publishes, prefix: str) -> tuple[Path, str]:
    """A new folder in ``@public`` (``<prefix>-<random>``) and its ``caterva2://`` URL through
    ``server.host``; its store path is ``f"@public/{folder.name}"``."""
    rel = f"{prefix}-{uuid.uuid4().hex[:8]}"
    folder = server.public / rel
    folder.mkdir()
    return folder, f"caterva2://{server.host}/@public/{rel}"


def shared_array(server: Server, prefix: str) -> tuple[str, np.ndarray]:
    """A 2-D array in @shared of the login server (readable only when logged in)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}.b2nd"
    folder = server.state / "shared"
    folder.mkdir(exist_ok=True)
    a = np.arange(40 * 30, dtype="f4").reshape(40, 30)
    blosc2.asarray(a, chunks=(20, 15), blocks=(10, 15), urlpath=str(folder / name), mode="w")
    return f"@shared/{name}", a


# -- fault-injecting proxy -------------------------------------------------------------------------


@dataclass
class FaultProxy:
    """Forwards GETs to ``upstream``; ``plan(n, path)`` names a fault for request number n.

    Faults: ``None`` (forward), ``"500"`` (500 then close the connection), ``"reset"`` (close
    without answering), ``"slow"`` (sleep ``delay`` s, then forward), ``"truncate"`` (announce the
    full length, send half the body, close), ``"garble"`` (forward with bytes 32..95 of the body
    inverted: a 200 answer of the right length whose content is damaged).
    """

    upstream: str
    public: Path = Path()
    url: str = ""
    delay: float = 3.0
    plan: Callable[[int, str], str | None] = lambda n, path: None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the forwarder's pooled connections to ``upstream``: close() them when done (left to the
    #: GC, their sockets made the "unclosed socket" warnings of later tests)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def close(self) -> None:
        self.client.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 written into ``folder`` by the openssl command
    (callers skip when ``shutil.which("openssl")`` is None): ``(cert.pem, key.pem)``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def proxy_handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    """The request handler of ``proxy``: records each path in ``proxy.requests``, then answers as
    ``proxy.plan`` says (a plan that names no fault makes a plain forwarder)."""
    client = proxy.client

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
            if fault == "garble":
                body = body[:32] + bytes(b ^ 0xFF for b in body[32:96]) + body[96:]
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
