"""A range-capable static HTTP server handler for the b2h5 remote tests.

The standard library's ``http.server`` ignores ``Range`` headers; :class:`RangeHandler` answers
GET with ``206 Partial Content`` for one byte range, 404 for anything but a file (no directory
pages, like most static hosts), and records every GET path in :data:`GETS`.
"""

from __future__ import annotations

import os
import re
from http.server import SimpleHTTPRequestHandler

GETS: list[str] = []


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range GET support."""

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
        self.end_headers()
        fh.seek(start)
        self._remaining = length
        return fh

    def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
        outputfile.write(source.read(self._remaining))

    def do_GET(self) -> None:
        GETS.append(self.path)
        super().do_GET()
