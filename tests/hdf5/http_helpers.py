"""A range-capable static HTTP server handler for the b2h5 remote tests.

The standard library's ``http.server`` ignores ``Range`` headers; :class:`RangeHandler` answers
GET with ``206 Partial Content`` for one byte range, 404 for anything but a file (no directory
pages, like most static hosts), and records every GET path in :data:`GETS`.
:class:`FaultyHandler` subclasses misbehave as real servers do (error statuses, dropped
connections, no ``Content-Length``, redirects).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GETS: list[str] = []


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support (and an ``ETag`` from the file's size, inode
    and mtime, as nginx and Apache make them, when the class attribute :attr:`etag` is set)."""

    etag: bool = False

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        rng = self.headers.get("Range")
        fh = open(path, "rb")  # noqa: SIM115 - closed by the base class after copyfile
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m is None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            start, length = 0, size
        else:
            start = int(m[1]) if m[1] else max(0, size - int(m[2]))
            end = min(int(m[2]), size - 1) if m[1] and m[2] else size - 1
            if start >= size:
                fh.close()
                self.send_error(416)
                return None
            length = end - start + 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        if type(self).etag:
            st = os.stat(path)
            self.send_header("ETag", f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.end_headers()
        fh.seek(start)
        self._remaining = length
        return fh

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        outputfile.write(source.read(self._remaining))

    def do_GET(self) -> None:
        GETS.append(self.path)
        super().do_GET()

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client stopped reading (a whole-file answer)
            super().handle()


class FaultyHandler(RangeHandler):
    """:class:`RangeHandler` with a fault switched by the class attribute :attr:`fault`
    (make a subclass per test: ``type("H", (FaultyHandler,), {"fault": None})``).

    * ``"401"``, ``"403"``, ``"500"``...: every request answers that status;
    * ``"drop"``: GET bodies stop halfway and the connection is closed;
    * ``"cut"``: the same without ``Content-Length`` in GET answers, so the client cannot
      tell (HEAD still gives the size);
    * ``"nolength"``: no ``Content-Length`` (close-delimited bodies, as chunked servers);
    * ``"noranges"``: ``Accept-Ranges: none`` (fsspec then streams the file);
    * ``"redirect-301"`` (302, 307, 308): ``/r/<path>`` redirects to ``/<path>``.
    """

    fault: str | None = None

    def send_head(self):  # type: ignore[no-untyped-def]
        fault = type(self).fault or ""
        if fault.isdigit():
            self.send_error(int(fault))
            return None
        if fault.startswith("redirect-") and self.path.startswith("/r/"):
            self.send_response(int(fault.partition("-")[2]))
            self.send_header("Location", self.path[2:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def send_header(self, keyword: str, value: str) -> None:
        fault = type(self).fault
        cut = fault == "cut" and self.command == "GET"
        if (fault == "nolength" or cut) and keyword == "Content-Length":
            self.close_connection = True
            return
        if fault == "noranges" and keyword == "Accept-Ranges":
            value = "none"
        super().send_header(keyword, value)

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        if type(self).fault not in ("drop", "cut"):
            return super().copyfile(source, outputfile)
        data = source.read(self._remaining)
        outputfile.write(data[: len(data) // 2])
        outputfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        return None

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client hung up on a cut body
            super().handle()


@contextlib.contextmanager
def serve(folder: Path, handler: type[SimpleHTTPRequestHandler]) -> Iterator[str]:
    """The files of ``folder`` served by ``handler`` on 127.0.0.1, for the ``with`` block: its
    base URL (``http://127.0.0.1:<port>``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def clear_blocks() -> None:
    """Empty b2h5's process-wide cache of read-ahead blocks (reads then go to the server)."""
    from b2store.hdf5 import _io_pools

    _io_pools._BLOCKS._data.clear()
