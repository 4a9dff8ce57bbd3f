"""What a failure of the target (the filesystem holding the HDF5 file) is raised as.

Contract
--------
* :func:`_target_error` maps a transport failure (an HTTP status, a timeout, a cut connection,
  an HTTP/cloud client's own exception) to :class:`~b2store.errors.AccessRefusedError` or
  :class:`~b2store.errors.TransferError` naming the file and what to do; ``None`` when the
  failure is no transport's (a 404/410 stays a missing file).
* A file that is gone (:func:`_gone`) or replaced (:func:`_replaced`) after indexing raises a
  plain :class:`OSError`, never a :class:`FileNotFoundError` (``_MISSING``: what zarr takes for
  an unwritten chunk and fills).
* Reads that are not what was asked for are loud: :func:`_check_range` (more bytes than the
  range: a server ignoring ``Range``), :class:`_CheckedFile` (fewer: a body cut short while
  h5py reads at open) and :func:`_no_range_is_oserror` (fsspec's ValueError for a server
  without range support, and the transport's errors, while indexing).
* HTTP ranged reads are checked against what was asked and what was indexed
  (:func:`_check_http_answer`): another range than asked, another file size in
  ``Content-Range``, another ``ETag``/``Last-Modified`` (the file changed on the server since
  it was indexed) raise an :class:`OSError` naming the file, never wrong bytes.
* Messages never show credentials (:func:`_scrub`): the password of a URL's user info and the
  values of signature/token query parameters are masked.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from b2store.errors import AccessRefusedError, TransferError

#: ``scheme://user:password@`` in a URL: the password (up to the last ``@`` of the host
#: part: passwords may hold ``@``) is masked in messages.
_USERINFO = re.compile(r"(?<=://)([^/@\s:'\"]*):[^/\s'\"]*@")
#: ``scheme://token@`` (a user name alone, as tokens are given to GitHub or GitLab): masked.
_USER_TOKEN = re.compile(r"(?<=://)[^/:@\s'\"]+@")
#: Query parameters of signed URLs (S3 ``X-Amz-Signature``/``X-Amz-Credential``/
#: ``X-Amz-Security-Token``, Azure SAS ``sig``, GCS ``X-Goog-Signature``, CloudFront
#: ``Signature``/``Key-Pair-Id``, ``token``, ``api_key``...): their values are masked.
_SECRET_QUERY = re.compile(
    r"([?&][^=&#\s'\"]*(?:sig|token|credential|secret|passw|key|auth)[^=&#\s'\"]*=)"
    r"(?:[^&#\s'\":]|:(?!\s|$))*",
    re.IGNORECASE,
)


def _scrub(text: str) -> str:
    """``text`` (a URL or a message naming one) without credentials: a URL's password (or
    its user name when it has no password: a token) and the values of signature, token and
    key query parameters become ``***``.

    Errors name the file they are about, and a ``http://user:password@host/...`` URL or a
    presigned URL is a credential: it showed in every error message (tracebacks, logs).
    """
    text = _USER_TOKEN.sub("***@", _USERINFO.sub(r"\1:***@", text))
    return _SECRET_QUERY.sub(r"\1***", text)


def _cause(exc: BaseException) -> BaseException | None:
    """``exc`` to chain an error to (``raise err from _cause(exc)``), or None when its
    message or one it came from shows credentials (aiohttp's errors name the URL with its
    query): tracebacks print chained errors."""
    for e in _chain(exc):
        if _scrub(str(e)) != str(e):
            return None
    return exc


#: What zarr takes for "no such key" (and fills with the fill value).
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def _gone(url: str, exc: BaseException) -> OSError:
    """The error for a target file that is missing at read time (not a missing-key error)."""
    return OSError(
        _scrub(
            f"{url}: the HDF5 file cannot be read any more ({type(exc).__name__}: {exc}); it was "
            "moved, deleted or replaced after b2h5 indexed it. Open it again."
        )
    )


#: Top-level modules of the HTTP/cloud clients under fsspec's remote filesystems: their errors
#: are failures to reach the file (aiohttp's are not even OSErrors), not properties of it.
_TRANSPORT_MODULES = frozenset(
    {"aiohttp", "requests", "urllib3", "httpx", "httpcore", "botocore", "aiobotocore"}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _http_status(exc: BaseException) -> tuple[int | None, BaseException]:
    """The HTTP status of an error or of one it came from, and that error (fsspec's HTTP
    filesystem turns every failed HEAD/GET of ``info()`` into a bare FileNotFoundError raised
    from it)."""
    for e in _chain(exc):
        status = getattr(e, "status", None)
        response = getattr(e, "response", None)
        if status is None and isinstance(response, dict):  # botocore's ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        elif status is None:
            status = getattr(response, "status_code", None)  # requests, httpx
        if isinstance(status, int) and 100 <= status < 600:
            return status, e
    return None, exc


def _options_hint(url: str) -> str:
    """``storage_options={...}`` giving the target of ``url`` its options: under the URL's
    own scheme, the only key fsspec routes to it (``"http"`` is ignored for an https URL)."""
    if "://" not in url:
        return "storage_options={<the URL's scheme, as written>: {...}}"
    scheme = url.split("://", 1)[0]
    opts = "{'headers': {'Authorization': ...}}" if scheme in ("http", "https") else "{...}"
    return f"storage_options={{{scheme!r}: {opts}}}"


def _target_error(url: str, exc: BaseException, local: bool = False) -> OSError | None:
    """The error to raise for a failure of the target's transport (``None``: not one).

    A 403 (an expired presigned URL), a 500 or a cut connection said "HDF5 file not found" at
    open, and at chunk reads raised the HTTP client's own exceptions (aiohttp's have no builtin
    base and, for a dropped body, no URL). A 404/410 stays a missing file.
    """
    if local or isinstance(exc, AccessRefusedError | TransferError):
        return None  # no transport; or already says so, naming the file that failed
    status, cause = _http_status(exc)
    if status is None and isinstance(exc, PermissionError) and exc.filename is None:
        status = 403  # s3fs, gcsfs, ...: their own PermissionError (the OS's names its file)
    if status in (404, 410):
        return None
    if status in (401, 403):
        return AccessRefusedError(
            _scrub(
                f"{url}: the server refused access to the HDF5 file (HTTP {status}). Give "
                "credentials in the target's options (xr.open_zarr('b2h5::<url>', "
                f"{_options_hint(url)}), or "
                "fsspec.filesystem('b2h5', fo=<url>, target_options={...})); for a signed URL "
                "(S3 presigned, SAS token) make a new one: it may have expired."
            )
        )
    if status is not None and status >= 400:
        return TransferError(
            _scrub(
                f"{url}: the server answered HTTP {status} when reading the HDF5 file ({cause}). "
                "Check the URL and the server, then try again."
            )
        )
    for e in _chain(exc):
        if isinstance(e, TimeoutError):
            # fsspec's HTTP filesystem waits up to aiohttp's default 5 minutes; its answer was
            # a bare TimeoutError() naming nothing, and at open "not a readable HDF5 file"
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return TransferError(
                _scrub(
                    f"{url}: reading the HDF5 file timed out ({what}). Check the network and the "
                    "server, then try again. The wait is the target's option (for HTTP: "
                    "target_options={'client_kwargs': {'timeout': "
                    "aiohttp.ClientTimeout(total=...)}})."
                )
            )
        if isinstance(e, ValueError) and not isinstance(e, OSError):
            # aiohttp's InvalidURL: a path that is no URL (a candidate), no transfer (its
            # certificate failure is a ValueError too, and an OSError: "file not found")
            continue
        if type(e).__module__.split(".")[0] in _TRANSPORT_MODULES:
            return TransferError(
                _scrub(
                    f"{url}: reading the HDF5 file failed: the connection failed or was cut "
                    f"({type(e).__name__}: {e}). Check the network and the server, then try again."
                )
            )
    return None


def _replaced(url: str) -> OSError:
    """The error for a target file replaced by another one (or, remote, changed) since it
    was indexed."""
    return OSError(
        _scrub(
            f"{url}: the HDF5 file was replaced by another file after b2h5 indexed it, so its "
            "chunks are not where the index says. Open it again."
        )
    )


#: What to say of a server that ignores HTTP ``Range`` (when reading chunks or indexing).
_NO_RANGE = (
    "the server ignores HTTP range requests, which b2h5 needs to read the file's metadata and "
    "chunks at their offsets. Serve the file from a server that supports them, or download it "
    "first (b2h5::simplecache::<url>)."
)


def _check_range(url: str, start: int, end: int, data: Any) -> bytes:
    """``data`` as bytes, after checking that it is no longer than the range ``start:end``.

    A server that ignores ``Range`` headers (Python's ``http.server``) answers a ranged GET
    with the whole file: taken as the range, it gave wrong chunk bytes silently.
    """
    data = bytes(data)
    if len(data) > end - start:
        raise OSError(
            _scrub(
                f"{url}: asked for bytes {start}-{end - 1} ({end - start} bytes), got {len(data)}: "
                f"{_NO_RANGE}"
            )
        )
    return data


#: Said when a version header differs: some servers give one file several of them.
_CHECK_VERSION_HINT = (
    " If the server gives the same file different ETag/Last-Modified values (several servers "
    "behind a load balancer), pass check_version=False (a b2h5 storage option): sizes and "
    "ranges are still checked."
)


def _changed(url: str, detail: str, *, version_header: bool = False) -> OSError:
    """The error for a remote target file that changed on the server after it was indexed
    (``version_header``: told by an ``ETag``/``Last-Modified`` alone)."""
    hint = _CHECK_VERSION_HINT if version_header else ""
    return OSError(
        _scrub(
            f"{url}: the HDF5 file was replaced or changed on the server after b2h5 indexed it "
            f"({detail}), so its chunks are not where the index says. Open it again.{hint}"
        )
    )


#: HTTP headers that identify a version of a file (as fsspec's ``info()`` records them).
_VERSION_HEADERS = ("ETag", "Last-Modified")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def _version_stamp(stamp: str | None) -> tuple[str, str] | None:
    """(header, value) of an ``ETag``/``Last-Modified`` field of an index stamp (``"ETag=..."``
    or ``"size=...|ETag=..."``), or None when it has neither."""
    for part in (stamp or "").split("|"):
        name, _, value = part.partition("=")
        if name in _VERSION_HEADERS and value:
            return name, value
    return None


def _check_http_answer(
    url: str,
    start: int,
    end: int,
    status: int,
    headers: Mapping[str, str],
    data: bytes,
    size: int | None,
    stamp: str | None,
) -> bytes:
    """The body of a ranged GET of bytes ``start:end``, after checking that it is that range of
    the version of the file that was indexed (``size``, ``stamp``: None when unknown).

    fsspec's HTTP filesystem returns whatever body comes back: a ``206`` for another range (a
    misbehaving proxy or cache) and the chunks of a file rewritten on the server since it was
    indexed (another ``ETag``/``Last-Modified``, or size) read as wrong values, silently.
    """
    if status == 416:
        raise _changed(
            url,
            f"the server says bytes {start}-{end - 1} are beyond the file's end (HTTP 416); it "
            f"had {size} bytes when indexed",
        )
    if status == 200 and start > 0:
        raise OSError(_scrub(f"{url}: {_NO_RANGE}"))  # the whole file, not the range asked
    if status == 200:
        data = data[: end - start]  # the whole file: its first bytes are the range asked
    expected = _version_stamp(stamp)
    if expected is not None:
        name, then = expected
        now = headers.get(name)
        if now and now.removeprefix("W/") != then.removeprefix("W/"):
            raise _changed(url, f"{name} {then} when indexed, {now} now", version_header=True)
    if status == 206 and "Content-Range" in headers:
        m = _CONTENT_RANGE.fullmatch(headers["Content-Range"].strip())
        if m is not None and m[3] != "*" and size is not None and int(m[3]) != size:
            raise _changed(
                url,
                f"{m[3]} bytes now, {size} when indexed; or the server's HEAD and GET "
                "answers disagree on its size",
            )
        if m is None or int(m[1]) != start:
            raise OSError(
                _scrub(
                    f"{url}: asked for bytes {start}-{end - 1}, the server answered "
                    f"{headers['Content-Range']!r} with {len(data)} bytes: it does not serve the "
                    "byte ranges asked for (a misbehaving server, proxy or cache). Serve the file "
                    "from another server or download it first (b2h5::simplecache::<url>)."
                )
            )
    return _check_range(url, start, end, data)


class _CheckedFile:
    """A remote target file as h5py reads it at open: a short read raises, and every failed
    read is recorded in ``failures``.

    h5py fills what a read did not return with zeros, and fsspec's HTTP file returns what the
    server sent: a body cut short without the client noticing (no ``Content-Length``) gave
    zeros for the values read at open (types HDF5 converts, variable-length strings),
    silently. The indexer takes some OSErrors for a property of the file (a link that does
    not resolve becomes a note), so :meth:`~b2store.hdf5.filesystem.HDF5FileSystem._build`
    raises what was recorded.
    """

    def __init__(self, fh: Any, url: str, failures: list[BaseException], lock: Any = None) -> None:
        self._fh = fh
        self._lock = lock or contextlib.nullcontext()
        self._url = url
        self._failures = failures
        size = getattr(fh, "size", None)
        if not isinstance(size, int):  # a local file (simplecache::): its length
            here = fh.tell()
            size = fh.seek(0, 2)
            fh.seek(here)
        self._size = int(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def read(self, n: int = -1) -> bytes:
        pos = self._fh.tell()
        try:
            with self._lock:
                data = self._fh.read(n)
            self._check(pos, n, len(data))
        except Exception as exc:
            self._failures.append(exc)
            raise
        return data

    def readinto(self, buf: Any) -> int:
        pos = self._fh.tell()
        try:
            with self._lock:
                got = self._fh.readinto(buf)
            self._check(pos, memoryview(buf).nbytes, got)
        except Exception as exc:
            self._failures.append(exc)
            raise
        return int(got)

    def _check(self, pos: int, asked: int, got: int) -> None:
        size = self._size
        want = size - pos if asked is None or asked < 0 else min(asked, size - pos)
        if got < want:
            raise TransferError(
                _scrub(
                    f"{self._url}: read {got} of {want} bytes at offset {pos} while indexing the "
                    "HDF5 file: the connection was cut. Try again."
                )
            )


@contextlib.contextmanager
def _no_range_is_oserror(url: str, local: bool) -> Any:
    """Turn fsspec's ValueError for an HTTP server that ignores ``Range`` (raised when h5py
    reads past the first block while indexing) into an ``OSError`` naming the file, and so the
    transport's errors (:func:`_target_error`)."""
    try:
        yield
    except ValueError as exc:
        if "support range requests" not in str(exc):
            raise
        raise OSError(_scrub(f"{url}: {_NO_RANGE}")) from exc
    except Exception as exc:
        err = _target_error(url, exc, local)
        if err is None:
            raise
        raise err from _cause(exc)
