"""HTTP access to one Caterva2 server: URLs, credentials, retries and the status → exception table.

Contract
--------
* :class:`Caterva2Client` is the only place in b2store that knows Caterva2 URLs and auth. It speaks
  HTTP/1.1 through one pooled :class:`aiohttp.ClientSession` per event loop, keeps at most
  ``max_concurrency`` requests in flight, and retries connection resets, timeouts and 5xx answers
  with exponential backoff and jitter (tenacity's ``AsyncRetrying``; the server answers a bad
  chunk number with a 500 and then resets the keep-alive connection, so a 5xx always closes the
  connection it came on).
* Errors follow one table (:data:`STATUS_ERRORS`): 404 → :class:`FileNotFoundError`, 401/403 →
  :class:`PermissionError`, 400/422 → :class:`Caterva2BadRequestError` (a ``ValueError``),
  anything else → :class:`~b2store.errors.Caterva2HTTPError` (an ``OSError``). Messages name the
  URL and status.
* Credentials (``username``/``password`` or a ``token``, else the ``CATERVA2_USERNAME``,
  ``CATERVA2_PASSWORD`` and ``CATERVA2_TOKEN`` environment variables) travel only in the
  ``c2subauth`` cookie; they never appear in reprs, logs or error messages.
* HTTPS verifies the server's certificate against the system's CA store, read when the first
  session opens (so ``SSL_CERT_FILE``/``SSL_CERT_DIR`` set after aiohttp's import count), or
  against the CA bundle ``ssl`` names. TLS failures (an unverifiable certificate, a server
  that does not speak TLS) are not retried and raise :class:`ConnectionError` saying what to
  pass.
* The client holds no state that cannot be rebuilt: sessions are created lazily inside the running
  event loop, so an owner that is pickled and re-instantiated gets a fresh client.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import hashlib
import json
import logging
import os
import ssl as _ssl
import threading
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

try:
    import aiohttp
    import tenacity
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"b2store's caterva2:// filesystem needs {exc.name}: pip install 'b2store[caterva2]'"
    ) from exc

from b2store.errors import B2StoreError, Caterva2HTTPError

__all__ = [
    "STATUS_ERRORS",
    "Caterva2BadRequestError",
    "Caterva2Client",
    "Caterva2MissingError",
    "ClientConfig",
    "Response",
    "error_for_status",
]

logger = logging.getLogger(__name__)

AUTH_COOKIE = "c2subauth"

_LIVE_SESSIONS: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()


def _drop_session(session: aiohttp.ClientSession, *, on_its_loop: bool = False) -> None:
    """Close a session's sockets without awaiting (at exit, or when its owner goes away).

    ``on_its_loop`` (at exit, from the main thread): close it on its own event loop when that
    still runs in another thread (zarr's), so requests still in flight there see their
    connection close and finish, instead of leaving exceptions in futures nobody retrieves
    ("Future exception was never retrieved" printed at exit).
    """
    connector = session.connector
    if connector is None or connector.closed:
        return
    loop = getattr(session, "_loop", None)
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # never wait for a loop from its own thread
            if on_its_loop:
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=2)
                    return
            # asyncio transports belong to their loop's thread: closed from here (a GC in
            # another thread) their sockets stayed open until that loop woke ("unclosed socket")
            # (the callback holds the session, so it is not collected before its sockets close)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_close_connector, session)
                return
    _close_connector(session)


def _close_connector(session: aiohttp.ClientSession) -> None:
    connector = session.connector
    if connector is not None and not connector.closed:
        with contextlib.suppress(Exception):
            connector._close()


@atexit.register
def _drop_all_sessions() -> None:
    for session in list(_LIVE_SESSIONS):
        _drop_session(session, on_its_loop=True)


class Caterva2BadRequestError(Caterva2HTTPError, ValueError):
    """The server rejected a request as malformed (HTTP 400 or 422)."""


class Caterva2MissingError(B2StoreError, FileNotFoundError):
    """The server has no such dataset, directory or root (HTTP 404)."""


def _not_found(url: str, status: int, detail: str) -> Exception:
    return Caterva2MissingError(f"Caterva2 has no {url} (HTTP {status}): {detail or 'Not Found'}")


def _forbidden(url: str, status: int, detail: str) -> Exception:
    return PermissionError(
        f"Caterva2 refused {url} (HTTP {status}: {detail or 'Unauthorized'}). Pass "
        "username/password or token in storage_options, or set "
        "CATERVA2_USERNAME/CATERVA2_PASSWORD or CATERVA2_TOKEN."
    )


def _bad_request(url: str, status: int, detail: str) -> Exception:
    return Caterva2BadRequestError(url, status, detail)


#: HTTP status → exception factory ``(url, status, detail)``; others → Caterva2HTTPError.
STATUS_ERRORS = {
    404: _not_found,
    401: _forbidden,
    403: _forbidden,
    400: _bad_request,
    422: _bad_request,
}


def error_for_status(url: str, status: int, detail: str = "") -> Exception:
    """The exception for an error answer, following :data:`STATUS_ERRORS`."""
    factory = STATUS_ERRORS.get(status)
    if factory is not None:
        return factory(url, status, detail)
    return Caterva2HTTPError(url, status, detail)


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Connection settings of a :class:`Caterva2Client` (no credentials here).

    Parameters
    ----------
    base_url
        ``http://host:port`` or ``https://host:port`` (no trailing slash, no user info).
    timeout
        Seconds allowed for one request (connect + whole answer) before it counts as failed.
    connect_timeout
        Seconds allowed to open a connection.
    retries
        How many times a failed request is repeated (connection reset, timeout, 5xx).
    backoff
        First retry delay in seconds; doubled for each further retry, with jitter.
    max_concurrency
        Requests in flight at once (also the connection pool size).
    ssl
        HTTPS certificate checks: ``True`` (or ``None``) verifies against the system's CA
        store (honouring ``SSL_CERT_FILE``/``SSL_CERT_DIR``), a path names a CA bundle (PEM
        file) or a folder of hashed CA certificates to trust instead, ``False`` turns
        verification off, an :class:`ssl.SSLContext` is used as it is (not picklable: prefer
        a path for dask).
    """

    base_url: str
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.1
    max_concurrency: int = 8
    ssl: bool | str | os.PathLike[str] | _ssl.SSLContext | None = True

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"Expected an http:// or https:// base URL. Got {self.base_url!r}.")
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(
                    f"Expected a positive number of seconds for {name}. Got {value!r}."
                )
        if not (isinstance(self.retries, int) and 0 <= self.retries <= 20):
            raise ValueError(
                f"Expected an integer from the inclusive range (0, 20) for retries. "
                f"Got {self.retries!r} instead."
            )
        if not (isinstance(self.max_concurrency, int) and 1 <= self.max_concurrency <= 256):
            raise ValueError(
                f"Expected an integer from the inclusive range (1, 256) for max_concurrency. "
                f"Got {self.max_concurrency!r} instead."
            )
        if isinstance(self.ssl, str | os.PathLike):
            where = os.path.abspath(os.path.expanduser(os.fspath(self.ssl)))
            if not os.path.exists(where):
                raise FileNotFoundError(
                    f"Expected ssl to name a CA bundle (PEM file) or a folder of CA "
                    f"certificates. Got {where!r} instead, which does not exist."
                )
            # absolute: the context is built at the first request, maybe in another folder
            object.__setattr__(self, "ssl", where)
        elif not (self.ssl is None or isinstance(self.ssl, bool | _ssl.SSLContext)):
            raise TypeError(
                "Expected ssl True (verify with the system's CA store), False (no "
                "verification), the path of a CA bundle or an ssl.SSLContext. Got "
                f"{self.ssl!r} instead."
            )

    def ssl_context(self) -> _ssl.SSLContext | bool:
        """What aiohttp's connector gets for ``ssl`` (``False``: no certificate checks)."""
        if isinstance(self.ssl, _ssl.SSLContext) or self.ssl is False:
            return self.ssl
        if self.ssl is True or self.ssl is None:
            # not aiohttp's default context: it is made at aiohttp's import, so SSL_CERT_FILE
            # set later (in a notebook, after importing xarray) was ignored
            # (the default paths follow SSL_CERT_FILE and SSL_CERT_DIR)
            paths = _ssl.get_default_verify_paths()
            key = ("default", *_stamped(paths.cafile), *_stamped(paths.capath))
            return _shared_context(key, _ssl.create_default_context)
        where = os.fspath(self.ssl)
        try:
            stamp = _stamped(where)
            if os.path.isdir(where):
                return _shared_context(
                    ("capath", where, stamp), lambda: _ssl.create_default_context(capath=where)
                )
            return _shared_context(
                ("cafile", where, stamp), lambda: _ssl.create_default_context(cafile=where)
            )
        except (_ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"Expected ssl to name a CA bundle (PEM file) or a folder of CA certificates. "
                f"Got {where!r} instead, which does not load: {exc}"
            ) from None


def _stamped(path: str | None) -> tuple[str | None, int, int]:
    """``path`` with the modification time and size of what it names (-1, -1 when nothing):
    a CA added to a bundle or a folder after a context was built gets a new context."""
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    return (path, st.st_mtime_ns, st.st_size) if st else (path, -1, -1)


#: TLS contexts built for ``ClientConfig.ssl`` (the system store per SSL_CERT_FILE/SSL_CERT_DIR,
#: a CA bundle per path, mtime and size): loading a CA store takes ~45 ms in the event loop, and
#: every open (every store unpickled on a dask worker) makes a client of its own. A context may
#: be shared by many connections.
_CONTEXTS: dict[tuple[Any, ...], _ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def _reset_after_fork() -> None:
    """A fresh lock in a forked child (called by the filesystem's fork hook)."""
    global _CONTEXTS_LOCK
    _CONTEXTS_LOCK = threading.Lock()


def _shared_context(key: tuple[Any, ...], build: Any) -> _ssl.SSLContext:
    """The context cached under ``key``, built by ``build()`` the first time."""
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = build()  # outside the lock: a fork meanwhile must not inherit it held
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.setdefault(key, ctx)
    return ctx


@dataclass(frozen=True)
class Response:
    """A successful answer: body bytes and the headers b2store cares about."""

    body: bytes
    etag: str | None
    content_type: str


class _Secret:
    """A string that never shows itself in a repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class Caterva2Client:
    """Async HTTP client for one Caterva2 server.

    Parameters
    ----------
    config
        Connection settings.
    username, password
        Credentials for ``POST /auth/jwt/login``; the session cookie it returns is used afterwards.
    token
        A ``c2subauth`` JWT (with or without the ``c2subauth=`` prefix), instead of a password.

    Notes
    -----
    Safe to share between coroutines of one event loop; a call from another loop gets its own
    session. Not picklable on purpose: owners keep the constructor arguments and rebuild it.
    """

    def __init__(
        self,
        *,
        config: ClientConfig,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        self.config = config
        # CATERVA2_TOKEN is a default, not an override: beside a username or password passed
        # here it went first, so the reads were another user's (their @personal datasets,
        # cached under the identity of the user passed)
        login_given = bool(username or password)
        username = username or os.environ.get("CATERVA2_USERNAME") or None
        password = password or os.environ.get("CATERVA2_PASSWORD") or None
        token = token or (None if login_given else os.environ.get("CATERVA2_TOKEN")) or None
        if (username is None) != (password is None) and token is not None:
            # a token reads on its own: half a login (e.g. CATERVA2_USERNAME exported for
            # cat2-client) beside it is not an error, just unused
            username = password = None
        if (username is None) != (password is None):
            unused = (
                " (CATERVA2_TOKEN is set but not used: a username or password passed goes "
                "first; pass token= to read with it)"
                if login_given and os.environ.get("CATERVA2_TOKEN")
                else ""
            )
            raise ValueError(
                "Caterva2 login needs both a username and a password (storage_options username="
                f"/password= or CATERVA2_USERNAME/CATERVA2_PASSWORD); got only one{unused}."
            )
        self._username = username
        self._password = _Secret(password) if password is not None else None
        if token is not None:
            token = token.strip()  # read from a file: a trailing newline broke every request
            if token.startswith(f"{AUTH_COOKIE}="):
                token = token[len(AUTH_COOKIE) + 1 :]
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
                # aiohttp refuses such a header with "Potential header injection attack"
                raise ValueError(
                    "Expected a Caterva2 token (the c2subauth cookie value) of printable "
                    "characters; the token given (storage_options token= or CATERVA2_TOKEN) "
                    "holds control characters"
                )
        self._token = _Secret(token) if token else None
        #: how requests authenticate, as resolved here from the arguments and the environment
        #: (the token a login fetches later does not change it)
        self.auth_kind = "token" if self._token else ("password" if self._password else "anonymous")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._login_lock: asyncio.Lock | None = None
        #: why the server refused the username/password: requests waiting for the login raise
        #: it too instead of each trying the same credentials again (a wrong password was sent
        #: once per concurrent request, and the ones still waiting at exit printed "Event loop
        #: is closed" tracebacks)
        self._login_refused: str | None = None
        #: closes the session when this client is collected: a weakref callback runs before
        #: any ``__del__`` of a collected cycle, so aiohttp never finds its session still open
        #: ("Unclosed client session" when its own ``__del__`` ran before ours)
        self._closer: weakref.finalize | None = None
        self._ssl: _ssl.SSLContext | bool | None = None  # built at the first HTTPS session

    def __repr__(self) -> str:
        auth = "token" if self._token else ("password" if self._password else "anonymous")
        return f"Caterva2Client({self.config.base_url!r}, auth={auth})"

    @property
    def has_credentials(self) -> bool:
        """Whether requests carry credentials (a token, or a login by username/password)."""
        return self._token is not None or self._password is not None

    @property
    def identity(self) -> str | None:
        """Who reads: ``"sub:<user id>"`` from the ``sub`` claim of the cookie in use (the token
        given, or the one the login returned), else ``"user:<name>"`` before the login, ``None``
        when anonymous. Never the secret itself: a token that is no readable JWT gives a hash
        of it."""
        token = self._token.get() if self._token is not None else ""
        subject = _jwt_subject(token) if token else None
        if subject is not None:
            return f"sub:{subject}"
        if self._username is not None and self._password is not None:
            return f"user:{self._username}"
        if token:
            return "token-sha256:" + hashlib.sha256(token.encode()).hexdigest()
        return None

    # -- URLs ------------------------------------------------------------------------------------

    def url(self, verb: str, path: str = "") -> str:
        """``<base>/api/<verb>/<path>`` with the path percent-encoded (``@`` and ``/`` kept)."""
        path = path.strip("/")
        if any(part in (".", "..") for part in path.split("/")):
            # the HTTP client resolves dot segments: "@public/../../roots" would ask
            # /api/roots for an info, "@public/.." the server's 500; no server name is "." or ".."
            raise ValueError(
                f"Expected a Caterva2 path without '.' or '..' segments (<root>/<path>). Got "
                f"{path!r} instead; write the path the server lists"
            )
        tail = f"/{quote(path, safe='/@')}" if path else ""
        return f"{self.config.base_url}/api/{verb}{tail}"

    # -- sessions --------------------------------------------------------------------------------

    async def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            if self._closer is not None:
                self._closer()  # the previous session (another loop, or closed)
            if self._ssl is None:
                https = self.config.base_url.startswith("https://")
                self._ssl = self.config.ssl_context() if https else True
            connector = aiohttp.TCPConnector(
                limit=self.config.max_concurrency,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=self.config.timeout, sock_connect=self.config.connect_timeout
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                read_bufsize=2**20,  # chunks are MBs: 64 KiB reads halved the throughput
            )
            _LIVE_SESSIONS.add(self._session)
            self._closer = weakref.finalize(self, _drop_session, self._session)
            self._closer.atexit = False  # at exit, _drop_all_sessions closes it on its loop
            self._loop = loop
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            self._login_lock = asyncio.Lock()
        return self._session

    async def close(self) -> None:
        """Close the pooled connections of the current session (a later call opens new ones)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        if self._closer is not None:
            self._closer.detach()
        self._session = None

    async def _auth_cookie(self) -> str | None:
        """The cookie value to send: the token, or one got by logging in ("" for none)."""
        if self._token is not None:
            return self._token.get()
        if self._password is None:
            return None
        assert self._login_lock is not None
        async with self._login_lock:
            if self._token is None:
                if self._login_refused is not None:
                    raise PermissionError(self._login_refused)
                try:
                    self._token = _Secret(await self._login())
                except PermissionError as exc:
                    self._login_refused = str(exc)
                    raise
        return self._token.get()

    async def _login(self) -> str:
        """Log in with the username/password, retrying connection failures and 5xx answers.

        Returns the ``c2subauth`` cookie value, or ``""`` when the server has no login route
        (``login = false``: nothing needs credentials there).
        """
        assert self._session is not None and self._password is not None
        url = f"{self.config.base_url}/auth/jwt/login"
        data = {"username": self._username or "", "password": self._password.get()}
        try:
            async for attempt in self._retrying(url):
                with attempt:
                    # no redirects: aiohttp re-sends the form, password included, to wherever
                    # a 307/308 points, also to another host
                    async with self._session.post(url, data=data, allow_redirects=False) as resp:
                        status, detail = resp.status, (await resp.text())[:300]
                        cookie = resp.cookies.get(AUTH_COOKIE)
                        location = resp.headers.get("Location", "")
                    if status >= 500:
                        raise _Retryable(Caterva2HTTPError(url, status, detail))
        except tenacity.RetryError as exc:
            err, cause = self._gave_up(
                exc, f"Caterva2 login at {url}", "check that the server is running and the URL "
                "is right"
            )  # fmt: skip
            raise err from cause
        except aiohttp.ClientSSLError as exc:
            raise self._tls_failed(f"Caterva2 login at {url}", exc) from None
        except _NOT_HTTP as exc:
            raise self._not_http(f"Caterva2 login at {url}", exc) from None
        if 300 <= status < 400:
            raise _redirected(url, status, location, "the password")
        if status in (200, 204):
            if cookie is not None and cookie.value:
                return cookie.value
            raise Caterva2HTTPError(url, status, "login answered without a cookie")
        if status == 404:
            # no login route: a server with login = false, where every route is open. Not an
            # error (CATERVA2_USERNAME/PASSWORD may be meant for another server); was a
            # FileNotFoundError that zarr reported as "no array found"
            logger.warning(
                "b2store: %s has no login endpoint (a server with login = false?); reading "
                "without credentials",
                self.config.base_url,
            )
            return ""
        if status == 400:
            raise PermissionError(
                f"Caterva2 login at {url} failed for user {self._username!r}: wrong username "
                f"or password (HTTP 400 {detail})"
            )
        raise error_for_status(url, status, detail)

    def _retrying(self, shown: str, retries: int | None = None) -> tenacity.AsyncRetrying:
        """tenacity's retry loop for one request: ``retries`` more attempts after connection
        failures, timeouts and 5xx answers, waiting ``backoff * 2**n`` seconds, +-50 % jitter."""

        def log_retry(state: tenacity.RetryCallState) -> None:
            cause = state.outcome.exception() if state.outcome is not None else None
            if isinstance(cause, _Retryable):
                cause = cause.error
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            logger.debug("retrying %s in %.2f s after %r", shown, delay, cause)

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(
                (self.config.retries if retries is None else retries) + 1
            ),
            # backoff * 2**n * (0.5 + U(0, 1)): workers that failed together retry apart
            wait=tenacity.wait_exponential(multiplier=self.config.backoff / 2, max=30)
            + tenacity.wait_random_exponential(multiplier=self.config.backoff, max=30),
            # a TLS failure (a certificate, a server without TLS) is no connection hiccup
            retry=tenacity.retry_if_exception_type(_RETRYABLE)
            & tenacity.retry_if_not_exception_type(aiohttp.ClientSSLError),
            before_sleep=log_retry,
        )

    def _gave_up(
        self,
        exc: tenacity.RetryError,
        what: str,
        hint: str,
        answered: _Retryable | None = None,
    ) -> tuple[Exception, BaseException | None]:
        """The error to raise once every attempt failed, and its cause: the server's own error
        for a 5xx (also when ``answered``, an earlier attempt's 5xx, was followed by connection
        failures), else a :class:`ConnectionError` saying how often and how long it was tried."""
        cause = exc.last_attempt.exception()
        if not isinstance(cause, _Retryable) and answered is not None:
            cause = answered
        if isinstance(cause, _Retryable):
            return cause.error, None
        kind = "timed out" if isinstance(cause, TimeoutError) else "failed"
        return ConnectionError(
            f"{what} {kind} after {exc.last_attempt.attempt_number} attempts (timeout "
            f"{self.config.timeout} s): {cause!r}; {hint}"
        ), cause

    def _tls_failed(self, what: str, exc: aiohttp.ClientSSLError) -> ConnectionError:
        """The error of a failed TLS handshake: an unverifiable certificate, or a server that
        does not speak TLS. Not chained (the aiohttp error is about the connection only, but
        says it at length)."""
        reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
        text = str(getattr(reason, "reason", None) or reason)
        verify = getattr(reason, "verify_message", None)
        if verify:
            text = f"{text}: {verify}"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return ConnectionError(
                f"{what} failed: the TLS certificate of {self.config.base_url} could not be "
                f"verified ({text}). For a server with a private or self-signed certificate pass "
                "its CA bundle, storage_options={'ssl': '/path/to/ca.pem'}, or set "
                "SSL_CERT_FILE; ssl=False turns certificate checks off."
            )
        return ConnectionError(
            f"{what} failed: the TLS handshake with {self.config.base_url} failed ({text}); "
            "does the server speak HTTPS? Use caterva2:// for plain HTTP."
        )

    def _not_http(self, what: str, exc: aiohttp.ClientError) -> ConnectionError:
        """The error of an answer aiohttp could not take as HTTP (a port of another service)
        or a redirect it would not follow (too many, or to a non-HTTP URL). Not chained: the
        aiohttp error holds the request's headers, session cookie included."""
        # a redirect error's str() is its target URL (and why), a response error's holds more
        text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
        reason = str(text or type(exc).__name__).splitlines()[0].strip()
        return ConnectionError(
            f"{what} got no usable HTTP answer ({type(exc).__name__}: {reason}); is "
            f"{self.config.base_url} a Caterva2 server (host, port, and caterva2s:// for HTTPS)?"
        )

    # -- requests --------------------------------------------------------------------------------

    async def get(
        self, url: str, params: dict[str, str] | None = None, *, retries: int | None = None
    ) -> Response:
        """GET ``url``, retrying transient failures; raise per :data:`STATUS_ERRORS` otherwise.

        ``retries`` overrides the configured number of retries for this request. A refused
        session cookie (the 12 h JWT expired) triggers one new login per request.
        """
        session = await self._get_session()
        assert self._semaphore is not None
        cookie = await self._auth_cookie()
        headers = {"Cookie": f"{AUTH_COOKIE}={cookie}"} if cookie else {}
        shown = url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        relogged = False
        #: the last 5xx answer among the attempts: the server resets the connection after a
        #: 500, so a later attempt may fail on the connection instead; the server's answer is
        #: then the error to report (a "connection reset" error read as "server down" and,
        #: unlike a 500, failed a whole directory instead of skipping the one dataset)
        answered: _Retryable | None = None
        try:
            async for attempt in self._retrying(shown, retries):
                with attempt:
                    expired = False
                    try:
                        return await self._get_once(
                            session, url, params, headers, shown, relogin=not relogged
                        )
                    except _Relogin:
                        expired = True  # log in again outside the handler (no chained context)
                    except _Retryable as exc:
                        answered = exc
                        raise
                    if expired:
                        relogged = True
                        if self._token is not None and self._token.get() == cookie:
                            # only the cookie this request sent: another request refused at
                            # the same time may have logged in again already
                            self._token = None
                        cookie = await self._auth_cookie()
                        headers = {"Cookie": f"{AUTH_COOKIE}={cookie}"} if cookie else {}
                        return await self._get_once(
                            session, url, params, headers, shown, relogin=False
                        )
        except tenacity.RetryError as exc:
            hint = "is the server up?"
            if self.config.base_url.startswith("http://"):
                hint += " (a server that speaks HTTPS only needs caterva2s://)"
            err, cause = self._gave_up(exc, f"Caterva2 request {shown}", hint, answered)
            raise err from cause
        except aiohttp.ClientSSLError as exc:
            raise self._tls_failed(f"Caterva2 request {shown}", exc) from None
        except _NOT_HTTP as exc:
            raise self._not_http(f"Caterva2 request {shown}", exc) from None
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    async def _get_once(
        self,
        session: aiohttp.ClientSession,
        url: str,
        params: dict[str, str] | None,
        headers: dict[str, str],
        shown: str,
        *,
        relogin: bool = True,
    ) -> Response:
        """One GET: the answer, or :class:`_Retryable` (5xx), :class:`_Relogin` (a refused
        cookie that a new login may fix) or the error of :data:`STATUS_ERRORS`."""
        assert self._semaphore is not None
        # with a session cookie, no redirects: aiohttp < 3.14 sends the Cookie header on to
        # whatever host a redirect names
        follow = not headers
        async with (
            self._semaphore,
            session.get(url, params=params, headers=headers, allow_redirects=follow) as resp,
        ):
            if resp.status == 200:
                body = await resp.read()
                return Response(
                    body=body,
                    etag=resp.headers.get("ETag"),
                    content_type=resp.headers.get("Content-Type", ""),
                )
            detail = await _detail(resp)
            if resp.status >= 500:
                resp.close()  # the server resets the connection after a 500: drop it
                raise _Retryable(Caterva2HTTPError(shown, resp.status, detail))
            if resp.status == 401 and relogin and self._password is not None:
                raise _Relogin()
            if 300 <= resp.status < 400 and not follow:
                raise _redirected(shown, resp.status, resp.headers.get("Location", ""), "the "
                                  "session cookie")  # fmt: skip
            if resp.status == 401 and self._token is not None and self._password is None:
                # the token given was refused: the generic advice to pass one would mislead
                raise PermissionError(
                    f"Caterva2 refused {shown} (HTTP 401: {detail or 'Unauthorized'}) with the "
                    "token given (storage_options token= or CATERVA2_TOKEN): it expired (a "
                    "login's token lives 12 h), was revoked, or is from another server. Pass a "
                    "new token, or username/password to log in as needed."
                )
            raise error_for_status(shown, resp.status, detail)

    async def get_json(
        self, verb: str, path: str = "", *, retries: int | None = None
    ) -> tuple[Any, str | None]:
        """``GET /api/<verb>/<path>`` decoded as JSON, with the answer's ETag."""
        url = self.url(verb, path)
        resp = await self.get(url, retries=retries)
        try:
            return json.loads(resp.body), resp.etag
        except ValueError as exc:
            raise Caterva2HTTPError(url, 200, f"answer is not JSON: {resp.body[:100]!r}") from exc


#: aiohttp errors of an answer that is no usable HTTP: not HTTP at all, too many redirects, a
#: redirect to an invalid or non-HTTP URL (``Location: ftp://...`` came out as aiohttp's bare
#: ``NonHttpUrlRedirectClientError`` with the URL alone for a message; ``RedirectClientError``,
#: their base, is in aiohttp >= 3.10)
_NOT_HTTP: tuple[type[aiohttp.ClientError], ...] = (
    aiohttp.ClientResponseError,
    *((aiohttp.RedirectClientError,) if hasattr(aiohttp, "RedirectClientError") else ()),
)


def _redirected(url: str, status: int, location: str, what: str) -> Caterva2HTTPError:
    """The error of a redirect b2store does not follow because it would carry ``what``."""
    return Caterva2HTTPError(
        url,
        status,
        f"the server redirects to {location or '(no Location)'}; b2store does not follow "
        f"redirects that would carry {what} there: open the server it redirects to directly "
        "(caterva2s:// for HTTPS)",
    )


def _jwt_subject(token: str) -> str | None:
    """The ``sub`` claim of a JWT (unverified: it only names a cache folder), else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:  # bad base64, UTF-8 or JSON
        return None
    subject = payload.get("sub") if isinstance(payload, dict) else None
    return str(subject) if subject else None


class _Relogin(Exception):
    pass


class _Retryable(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: what a new attempt may fix: a 5xx answer, a dropped connection, a broken body, a timeout
_RETRYABLE = (_Retryable, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


async def _detail(resp: aiohttp.ClientResponse) -> str:
    """The ``detail`` of a FastAPI error body, or the start of the text."""
    try:
        text = await resp.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError):
        return ""
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return text[:200].strip()
    if isinstance(doc, dict) and "detail" in doc:
        return str(doc["detail"])[:300]
    return text[:200].strip()
