"""A ``cat2-server`` process for tests and benchmarks: start on a free 127.0.0.1 port, stop.

Used by conftest.py (fixtures) and by tests that need a server of their own (e.g. one to stop
mid-read). ``login=True`` creates one user with ``cat2-admin`` first. :func:`public_folder` and
:func:`shared_array` publish test datasets on a running server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import blosc2
import httpx
import numpy as np
import pytest

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


def public_folder(server: Server, prefix: str) -> tuple[Path, str]:
    """A new folder in ``@public`` (``<prefix>-<random>``) and its ``caterva2://`` URL."""
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
