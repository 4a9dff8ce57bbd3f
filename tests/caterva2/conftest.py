"""Fixtures for the Caterva2 filesystem tests: real ``cat2-server`` processes and a fault proxy.

* ``cat2_server`` (session): ``login = false`` server on a free 127.0.0.1 port; files written into
  ``public`` are served as ``@public/<relpath>`` at once (the server re-reads its folder).
* ``cat2_auth_server`` (session): ``login = true`` with one user created by ``cat2-admin``.
* ``fault_proxy``: a threaded HTTP proxy (``_c2server.FaultProxy``) in front of ``cat2_server``
  that injects faults (500 plus dropped connection, reset, slow answer, truncated body) following
  a per-test plan.
* ``so``: storage options with a per-test cache folder.
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _c2server import FaultProxy, Server, proxy_handler, start_server


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


@pytest.fixture
def fault_proxy(cat2_server: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream=cat2_server.url, public=cat2_server.public)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(proxy))
    httpd.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        proxy.close()
