"""``caterva2s://`` really speaks HTTPS: the issue's ``da.from_zarr("caterva2s://…")`` as typed,
through a TLS proxy (self-signed certificate for 127.0.0.1) in front of the local ``cat2-server``.

The client runs in a fresh interpreter with ``SSL_CERT_FILE`` naming the certificate, because
aiohttp builds its default SSL context (which reads that variable) once, at import.
"""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import blosc2
import numpy as np
import pytest
from _c2server import FaultProxy, proxy_handler, public_folder, self_signed_certificate

CLIENT = """
import sys
import dask.array as da
import numpy as np
import xarray as xr

url = sys.argv[1]
d = da.from_zarr(url)
ds = xr.open_zarr(url)
print(int(d.astype("u8").sum().compute()), int(ds["scan.b2nd"].astype("u8").sum().values))
"""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_caterva2s_over_tls(cat2_server: Any, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    folder, _url = public_folder(cat2_server, "tls")
    a = np.arange(6 * 40 * 30, dtype="u2").reshape(6, 40, 30)
    blosc2.asarray(a, chunks=(2, 40, 30), blocks=(1, 20, 30),
                   urlpath=str(folder / "scan.b2nd"), mode="w")  # fmt: skip
    proxy = FaultProxy(upstream=cat2_server.url)  # a plain forwarder: no faults planned
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), proxy_handler(proxy))
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"caterva2s://127.0.0.1:{httpd.server_address[1]}/@public/{folder.name}/scan.b2nd"
        env = {"SSL_CERT_FILE": str(cert), "B2STORE_CACHE": str(tmp_path / "cache"),
               "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # fmt: skip
        res = subprocess.run([sys.executable, "-c", CLIENT, url], env=env, capture_output=True,
                             text=True, timeout=180)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        total = int(a.astype("u8").sum())
        assert res.stdout.split() == [str(total), str(total)]
        assert any("/api/chunk/" in p for p in proxy.requests)  # the data went through TLS
        # without the certificate the TLS handshake fails: an error, never data
        env.pop("SSL_CERT_FILE")
        res = subprocess.run([sys.executable, "-c", CLIENT, url], env=env, capture_output=True,
                             text=True, timeout=180)  # fmt: skip
        assert res.returncode != 0 and "certificate" in res.stderr.lower()
    finally:
        httpd.shutdown()
        httpd.server_close()
        proxy.close()
