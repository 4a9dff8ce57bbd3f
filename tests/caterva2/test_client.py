"""Sessions of the Caterva2 HTTP client: dropped from another thread, their sockets close."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, http.server, threading, time

    import aiohttp

    from b2store.caterva2.client import _drop_session

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the connection stays in the session's pool

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    loop = asyncio.new_event_loop()  # like zarr's and fsspec's: a loop running in its own thread
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def open_session():
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector())
        async with session.get(url) as response:
            await response.read()
        return session

    for _ in range(10):
        session = asyncio.run_coroutine_threadsafe(open_session(), loop).result()
        _drop_session(session)  # what the client's finalizer does when a GC collects it here
        del session
        gc.collect()
    time.sleep(0.5)
    gc.collect()
    print("done")
    """
)


def test_sessions_dropped_from_another_thread_close_their_sockets() -> None:
    """A client collected on a thread other than its session's loop (a GC in the main thread
    while zarr's loop runs) closed the pooled sockets from the wrong thread: asyncio's debug
    mode refuses that and the socket leaked ("unclosed transport"/"unclosed socket" warnings in
    test runs). The close now runs on the session's own loop."""
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert "nclosed" not in out.stderr and "Non-thread-safe" not in out.stderr, out.stderr
