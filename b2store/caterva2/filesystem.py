"""Caterva2 repositories as read-only Zarr stores: fsspec protocols ``caterva2``, ``caterva2s``.

Contract
--------
* URL ``caterva2://host:port/<root>/<path>`` (plain HTTP) or ``caterva2s://host[:port]/...``
  (HTTPS). Filesystem paths are ``<root>/<path>/<zarr key>`` with the host kept in the instance
  (``_get_kwargs_from_urls``), so one instance talks to one server.
* Credentials in a URL (``caterva2://user:password@host/…``) move into the instance's
  credentials; paths, reprs, dask names and b2store's messages never hold them. zarr and xarray
  quote the URL string itself in their "not found" errors, so an instance opened from such a URL
  raises :class:`Caterva2URLNotFoundError` (a ``LookupError``, which they pass through) when the
  first node it is asked about does not exist.
* ``exists`` answers chunk keys from the chunk grid (no fetch). Listings (``ls``, ``find``,
  ``du``) hold metadata keys only: chunk sizes are unknown until a chunk is fetched, and datasets
  may have millions of chunks. A dataset's keys are listed with their sizes; ``ls`` of a key
  lists the key; ``find`` (and ``du``, ``glob``) list each level of the tree concurrently.
* A directory, an HDF5 file or group, or a ``.b2z`` TreeStore/DictStore (and a group inside one)
  is a Zarr group whose ``zarr.json`` carries the consolidated metadata of everything below it
  (one ``/api/list`` per directory or container file, one ``/api/info`` per dataset), so
  ``xarray.open_zarr`` never lists. Children keep their server names (``scan.b2nd``,
  ``h.h5/grp/data``, ``t.b2z/a/b``). A container file the server does not browse (a CTable
  ``.b2z``, a damaged ``.h5``) and keys of a flat DictStore below another key's array are left
  out of their groups with a warning; their own URLs still open (or say why not).
* ``open`` of a directory or dataset path raises ``IsADirectoryError``; ``get`` copies keys
  and refuses trees and glob patterns (listings hold no chunk keys, so the copy would lack the
  data).
* A dataset (``.b2nd``, ``.b2frame``, HDF5 leaf) URL, with ``dataset_as="auto"`` (default), is a
  Zarr **v2 dual view** and has no ``zarr.json``: ``.zarray`` + ``.zattrs`` make it an array
  (chunk keys ``i.j`` at its path) for ``zarr.open_array``/``dask.array.from_zarr``, and
  ``.zgroup`` + ``.zmetadata`` make it a group holding that array under its file name
  (``<path>/<name>/.zarray``, chunks ``<path>/<name>/i.j``) for ``zarr.open_group`` and
  ``xarray.open_zarr``; zarr probes ``zarr.json`` first, then ``.zarray`` or ``.zgroup``, so each
  call finds its view. ``.zattrs`` serves both: the dataset's attributes; only the child carries
  ``_ARRAY_DIMENSIONS``. ``fill_value`` is ``null`` (no xarray masking). ``dataset_as="array"``
  serves a v3 array instead (zarr's partial decoding), ``"group"`` a v3 group holding it. The
  children of a v3 directory group are found through its consolidated metadata only.
* The server URL itself (``caterva2://host:port/``) is a Zarr v3 group without consolidated
  metadata whose members are the roots (``@public``, ...), found by listing ``/api/roots``.
* Chunk keys of both formats (``c/i/j`` and ``i.j``) are served for every dataset.
* Metadata comes from ``/api/info``, once per open: the metadata keys zarr reads together share
  one request, and a store reuses a description younger than ``version_check_interval``. Each
  open is a new instance (``cachable = False``), so a reopened store sees the current version,
  and the chunk cache drops entries of older versions. Chunk keys outside the grid are missing keys
  (``FileNotFoundError``); no request is sent for them. Server failures on a chunk inside the grid
  raise ``OSError`` subclasses, never ``FileNotFoundError``, so zarr cannot turn them into fill
  values. A failed chunk read re-checks the dataset's version, so a dataset rewritten while open
  reports that rather than a bare server error.
* Chunk bytes: see :mod:`b2store.caterva2.metadata` (which endpoint, which codec) and
  :mod:`b2store.caterva2.chunks` (checks). Fetched bytes go to the :class:`ChunkCache` as received.
* A missing dataset, directory or root is a ``FileNotFoundError`` (``Caterva2MissingError``)
  whose message names its ``caterva2://`` URL and where to see what exists (a missing root: the
  server's roots); a chunk key off its dataset's grid names the keys there are. ``cat_file``
  of a dataset or directory (no key) raises ``IsADirectoryError``.
* A chunk key whose dataset is gone (deleted, renamed) raises ``Caterva2DataError`` (an
  ``OSError``), not ``FileNotFoundError``: zarr reads chunk keys only of arrays it opened, and would
  turn a missing key into fill values. An instance that has served no metadata (nor been
  unpickled from one that had) opened no array: there such a key is a missing key. A key that
  reads two ways (``f.h5/c/0``: v3 chunk 0 of a group, or v2 chunk 0 of a dataset ``c``) is
  served by whichever names a dataset.
* URLs are percent-decoded once; store paths (zarr's keys) never are.
* Not cached by fsspec (``cachable = False``): each open gets its own instance, which remembers
  the dataset versions its metadata was made from, so a later open of a changed dataset cannot
  re-target an earlier array. Picklable (rebuilt from the constructor arguments plus those
  versions, so a copy in a dask worker refuses chunks of a newer version; copies with the same
  arguments and versions share one instance per thread; HTTP sessions are created lazily in
  the event loop that uses them); safe for concurrent use from zarr's event loop and dask
  threads (one instance is not for several event loops at once). Read-only: writes raise
  ``PermissionError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import json
import logging
import math
import os
import posixpath
import re
import threading
import time
import weakref
from glob import has_magic
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
from fsspec.utils import tokenize

from b2store._chunk_origins import note_chunk
from b2store._readonly import FSSPEC_OPTIONS, ReadOnlyAsyncFileSystem
from b2store._zarrmeta import ArrayMeta, GroupMeta, Node, array_v2, group_v3, render_v3
from b2store.caterva2 import cache as _cache_module
from b2store.caterva2 import client as _client_module
from b2store.caterva2.cache import ChunkCache, default_cache_dir
from b2store.caterva2.chunks import (
    Caterva2DataError,
    check_chunk,
    check_frame,
    passes_through,
    special_header,
    to_zarr_chunk,
)
from b2store.caterva2.client import Caterva2Client, Caterva2MissingError, ClientConfig
from b2store.caterva2.metadata import (
    CONTAINER_SUFFIXES,
    DATASET_SUFFIXES,
    HDF5_SUFFIXES,
    SLICE,
    Dataset,
    UnsupportedCaterva2DatasetError,
    dataset_from_info,
    is_group_info,
    unclash_dimensions,
)
from b2store.errors import B2StoreError, Caterva2HTTPError

__all__ = ["Caterva2FileSystem", "Caterva2SFileSystem", "Caterva2URLNotFoundError"]

logger = logging.getLogger(__name__)

_V2_KEYS = frozenset({".zarray", ".zgroup", ".zattrs", ".zmetadata"})
_V2_CHUNK_KEY = re.compile(r"\d+(?:\.\d+)*")
DATASET_AS = ("auto", "array", "group")
#: nodes ``find`` lists at once (each costs an ``/api/info``; the client caps requests in flight)
_FIND_BATCH = 256
_UNSET = "default"


#: answers of ``/api/info`` and ``/api/list`` already read by the ``du`` running in this context
#: (its tasks share the dict): each group's ``zarr.json`` re-read every dataset below it, so a
#: dataset was described once per level above it, plus once by the walk
_WALK_ANSWERS: contextvars.ContextVar[dict[tuple[str, str], Any] | None] = contextvars.ContextVar(
    "_WALK_ANSWERS", default=None
)


class Caterva2URLNotFoundError(B2StoreError, LookupError):
    """The node a URL holding credentials (``user:password@host``) names does not exist.

    Raised instead of :class:`FileNotFoundError` by the first open of such a URL: zarr and xarray
    turn a ``FileNotFoundError`` into their own "not found" errors, which quote the URL string,
    password included. The message names the URL without credentials.
    """


class _ChunkOutsideGridError(B2StoreError, FileNotFoundError):
    """A chunk key outside its dataset's chunk grid (a missing key; no request was sent)."""


def _non_negative(name: str, value: Any, *, integer: bool = False) -> float:
    """A storage option that must be a number >= 0 (a whole number if *integer*: ``64e6``
    is taken as ``64000000``; otherwise ``inf`` is allowed), or a ValueError naming it."""
    valid = not isinstance(value, bool) and isinstance(
        value, int | float | np.integer | np.floating
    )  # a separate flag: no type narrowing of value below
    if valid and integer and not float(value).is_integer():
        valid = False  # 2.5 chunks, nan, inf
    if not valid or not float(value) >= 0:
        what = "an integer" if integer else "a number"
        raise ValueError(f"Expected {what} >= 0 for {name}. Got {value!r} instead.")
    return int(value) if integer else float(value)


class Caterva2FileSystem(ReadOnlyAsyncFileSystem):
    """Read-only Zarr view of a Caterva2 server over plain HTTP (protocol ``caterva2``).

    Parameters
    ----------
    host
        ``host:port`` of the server (taken from the URL when opened by URL).
    username, password
        Credentials (else ``CATERVA2_USERNAME``/``CATERVA2_PASSWORD``); never shown in reprs.
    token
        A ``c2subauth`` JWT (else ``CATERVA2_TOKEN``), instead of a password.
    cache_storage
        Folder of the persistent chunk cache; ``"default"`` for ``$B2STORE_CACHE/caterva2`` or
        ``~/.cache/b2store/caterva2``; ``None`` disables the cache.
    cache_size_limit
        Bytes the cache keeps at most (least recently used chunks go first), and one entry
        per 4 KiB of it (a file takes a disk block however small the chunk).
    timeout, connect_timeout, retries, backoff, max_concurrency
        HTTP behaviour, see :class:`~b2store.caterva2.client.ClientConfig`.
    version_check_interval
        Seconds after which a chunk read re-checks the dataset's version on the server (a
        changed dataset then raises instead of mixing old metadata with new chunks). ``0``
        checks before and after every chunk request, so no read mixes two versions.
    readahead
        Chunks fetched ahead when a dataset's chunks are requested in order, one at a time (a
        dask task asks for one chunk, so few dask threads would otherwise mean few requests in
        flight); 0 disables it. Random access, and zarr reading a selection (all its chunks
        asked for at once), trigger no readahead. Without a disk cache it fetches
        no more chunks than ``memory_cache_size`` keeps.
    memory_cache_size
        Bytes of recently loaded chunks kept in memory (ranged reads of one chunk, as zarr's
        partial decoding makes, then cost one load).
    ssl
        HTTPS certificate checks (``caterva2s://``): ``True`` against the system's CA store
        (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured), the path of a CA bundle (PEM) or of a
        folder of CA certificates to trust instead (a self-signed server's certificate), ``False``
        for none, or an :class:`ssl.SSLContext` (not picklable: pass a path for dask).
    url_credentials
        Set by fsspec when the URL itself held credentials (see
        :class:`Caterva2URLNotFoundError`); not meant to be passed by hand.
    dataset_as
        How a *dataset* URL is presented. ``"auto"`` (default): a Zarr v2 dual view, an array for
        ``zarr.open_array``/``dask.array.from_zarr`` and a group holding that array under the
        dataset's file name for ``zarr.open_group``/``xarray.open_zarr``; ``"array"``: a Zarr
        v3 array only (partial decoding); ``"group"``: a Zarr v3 group holding the dataset.
        Directories and HDF5 files are Zarr v3 groups whatever the choice.

    See Also
    --------
    Caterva2SFileSystem : the same over HTTPS.
    b2store.hdf5.filesystem.HDF5FileSystem : HDF5 files as Zarr stores.
    """

    protocol: Any = "caterva2"
    root_marker = ""
    async_impl = True
    #: One instance per open: an instance remembers the dataset versions its Zarr metadata was
    #: made from, so a shared one would let a later open re-target earlier arrays.
    cachable = False
    _scheme = "http"

    def __init__(
        self,
        *,
        host: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        cache_storage: str | os.PathLike[str] | None = _UNSET,
        cache_size_limit: int | None = 2 * 2**30,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_concurrency: int = 8,
        dataset_as: str = "auto",
        version_check_interval: float = 10.0,
        readahead: int = 4,
        memory_cache_size: int = 128 * 2**20,
        ssl: Any = True,
        url_credentials: bool = False,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - FSSPEC_OPTIONS)
        if unknown:
            # a misspelt option (cache_sise=...) would be ignored, silently
            raise TypeError(
                f"{self.protocol}:// got unknown option(s) {', '.join(map(repr, unknown))}. "
                f"It takes {', '.join(_storage_options())} (and fsspec's own: "
                f"{', '.join(sorted(FSSPEC_OPTIONS))})."
            )
        super().__init__(**kwargs)
        host = host or os.environ.get("CATERVA2_HOST")
        if not host:
            raise ValueError(
                f"Caterva2 URLs need a server: {self.protocol}://host:port/@public/path"
            )
        if any(c in host for c in "@/?# "):
            # user info here would end up in every URL of every error message: refuse it
            # without repeating it
            raise ValueError(
                f"Expected host as 'name[:port]' (a server of {self.protocol}:// URLs), without "
                "user info, path or spaces; pass credentials as username/password or token"
            )
        if dataset_as not in DATASET_AS:
            raise ValueError(
                f"Expected dataset_as 'auto', 'array' or 'group'. Got {dataset_as!r} instead."
            )
        self.host = host
        self.dataset_as = dataset_as
        self._url_credentials = bool(url_credentials)
        self._served_metadata = False
        self.base_url = f"{self._scheme}://{host}"
        self._client_args = {"username": username, "password": password, "token": token}
        self._config = ClientConfig(
            base_url=self.base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            backoff=backoff,
            max_concurrency=max_concurrency,
            ssl=ssl,
        )
        self._client: Caterva2Client | None = None
        _ = self.client  # validate credentials now (sessions are still opened lazily)
        if cache_storage == _UNSET:
            cache_storage = default_cache_dir()
        self.cache: ChunkCache | None = (
            None
            if cache_storage is None
            else ChunkCache(root=cache_storage, size_limit=cache_size_limit)
        )
        if self.cache is not None:
            _WITH_CACHE[id(self)] = self
        self.version_check_interval = _non_negative(
            "version_check_interval", version_check_interval
        )
        self._datasets: dict[str, Dataset] = {}
        self._checked: dict[str, float] = {}
        self._changed: dict[str, str] = {}
        self.readahead = int(_non_negative("readahead", readahead, integer=True))
        self._recent: dict[str, collections.deque[int]] = {}
        #: chunk numbers requested in the current event-loop iteration, per dataset (see
        #: _start_readahead), and the loop whose next iteration moves them into _recent
        self._batch: dict[str, list[int]] = {}
        self._batch_loop: asyncio.AbstractEventLoop | None = None
        self._latest: dict[str, int] = {}  # the chunk a reader asked for last, per dataset
        #: loads not finished yet, on the loop that runs them (the readahead's share of the
        #: connections; loads of another loop, e.g. a parent's before a fork, do not count)
        self._running = 0
        self._running_loop: asyncio.AbstractEventLoop | None = None
        #: version re-checks in flight, one per dataset, shared by the reads that wait for it
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._info_fetches: dict[str, asyncio.Task[tuple[Any, str | None]]] = {}
        self.memory_cache_size = int(
            _non_negative("memory_cache_size", memory_cache_size, integer=True)
        )
        self._loads: collections.OrderedDict[tuple[str, str, int], asyncio.Task[bytes]] = (
            collections.OrderedDict()
        )
        self._loads_bytes = 0  # bytes of the counted (finished) loads in _loads
        self._load_sizes: dict[tuple[str, str, int], int] = {}  # what each load counted
        self._aliases: dict[str, str] = {}
        #: versions of the datasets whose metadata the pickling instance had served (see
        #: ``__reduce__``): a copy in a dask worker refuses chunks of a newer version
        self._opened_versions: dict[str, str | None] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        versions = {path: ds.version for path, ds in self._datasets.items()}
        options = dict(self.storage_options)
        folder = options.get("cache_storage")
        if isinstance(folder, str | os.PathLike) and folder != _UNSET:
            path = os.fspath(folder)
            if not path.startswith("~") and not os.path.isabs(path):
                # the opener's folder, also in a worker started elsewhere; "~" and "default"
                # stay as given: they name each worker's own home or $B2STORE_CACHE
                options["cache_storage"] = os.path.abspath(path)
        ca = options.get("ssl")
        if isinstance(ca, str | os.PathLike) and not os.path.isabs(os.path.expanduser(ca)):
            options["ssl"] = os.path.abspath(ca)  # the CA bundle, also from a worker's folder
        return _unpickle, (type(self), self.storage_args, options, versions)

    def __repr__(self) -> str:
        # the client's own reading of the arguments and CATERVA2_* (one set of rules)
        auth = self.client.auth_kind
        return f"{type(self).__name__}({self.base_url!r}, auth={auth}, cache={self.cache!r})"

    @property
    def client(self) -> Caterva2Client:
        """The HTTP client, built on first use (so unpickled copies build their own)."""
        if self._client is None:
            self._client = Caterva2Client(config=self._config, **self._client_args)
        return self._client

    # -- paths -------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        protocols = cls.protocol if isinstance(cls.protocol, tuple) else (cls.protocol,)
        for proto in protocols:
            if path.startswith(f"{proto}://"):
                rest = path[len(proto) + 3 :]
                # a URL is percent-decoded once; a bare path (zarr joins keys to the store
                # path) is a server path already: "a%20b.b2nd" may be a real name
                path = unquote(rest.split("/", 1)[1]) if "/" in rest else ""
                break
        return path.strip("/")

    @classmethod
    def _get_kwargs_from_urls(cls, path: str) -> dict[str, Any]:
        """``host`` and the credentials of a URL ``<protocol>://[user:password@]host[:port]/…``.

        The server part ends at the first ``/`` (as in :meth:`_strip_protocol`), so ``?``, ``#``
        and ``@`` in a password work; a ``/`` must be written ``%2F``. Errors never repeat the
        URL (it may hold a password).
        """
        rest = str(path).split("://", 1)[-1]
        netloc, _, below = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        first = below.split("/", 1)[0]
        if "@" in f"/{below}".split("/@", 1)[0] or "@" in first[1:]:
            # "user:a/b@host/@public" or "user:1234/@x@host/@public": a "/" in a password
            raise ValueError(
                f"Expected {cls.protocol}://[user:password@]host[:port]/<root>/<path>; the "
                "server part of the URL ends too early: write '/' in a user name or password "
                "as %2F (or pass username/password in storage_options)"
            )
        if hostport.startswith("[") and "]" not in hostport:
            # fsspec reads "::" as a chain of filesystems: "caterva2://[::1]:8000/…" reaches
            # here as "caterva2://["
            raise ValueError(
                f"Expected {cls.protocol}://host[:port]/<root>/<path>; fsspec splits URLs at '::' "
                "(chained filesystems), so an IPv6 address written with '::' cannot be part of "
                f"the URL: write it in full ([0:0:0:0:0:0:0:1]) or open {cls.protocol}:///<root>/"
                "<path> with storage_options={'host': '[::1]:8000'}"
            )
        try:
            parts = urlsplit(f"//{hostport}")
            port = parts.port
        except ValueError:
            raise ValueError(
                f"Expected {cls.protocol}://[user:password@]host[:port]/<root>/<path>; the port "
                "of the URL is not a number from 0 to 65535 (percent-encode '/' in a user name "
                "or password)"
            ) from None
        out: dict[str, Any] = {}
        if parts.hostname:
            host = parts.hostname
            if ":" in host:  # IPv6 literal
                host = f"[{host}]"
            out["host"] = f"{host}:{port}" if port else host
        if at:
            username, colon, password = userinfo.partition(":")
            if username:
                out["username"] = unquote(username)
            if colon:
                out["password"] = unquote(password)
            # zarr and xarray repeat the URL string in their "not found" errors: see _read_key
            out["url_credentials"] = True
        return out

    def unstrip_protocol(self, name: str) -> str:
        """The URL of path ``name``: ``%`` is written ``%25``, as a URL is percent-decoded once
        (:meth:`_strip_protocol`), so the URL opens ``name`` again; so is ``:`` in a name
        holding ``::``, where fsspec would split the URL into a chain of filesystems; other
        characters stay readable."""
        path = name.lstrip("/").replace("%", "%25")
        if "::" in path:
            path = path.replace(":", "%3A")
        return f"{self.protocol}://{self.host}/{path}"

    def chunk_where(self, path: str) -> str:
        """``<dataset URL>: chunk (i, j)`` for a message about chunk key *path* (the key of a
        dataset's group view, ``<dataset>/<name>/c/i/j``, names the dataset once); the key
        itself where *path* is no chunk key. No request is sent."""
        for node, coords, _ in self._chunk_key_readings(path):
            node = self._aliases.get(node, node)
            parent, name = posixpath.split(node)
            if name and posixpath.basename(parent) == name and node not in self._datasets:
                node = parent  # the view's child: the dataset itself
            return f"{self.unstrip_protocol(node)}: chunk {coords}"
        return self.unstrip_protocol(path)

    # -- datasets and metadata ---------------------------------------------------------------------

    async def _shared_info(self, path: str) -> tuple[Any, str | None]:
        """:meth:`_fetch_info` for metadata, one request shared by the callers that ask at once
        (zarr opens a node by asking for ``zarr.json``, ``.zgroup``, ``.zarray`` and ``.zattrs``
        together, and ``/api/info`` carries the dataset's whole user metadata). Version checks
        around chunk reads do not share: theirs must be sent after the chunk was fetched."""
        loop = asyncio.get_running_loop()
        task = self._info_fetches.get(path)
        if task is None or task.get_loop() is not loop or task.done():
            task = loop.create_task(self._fetch_info(path))
            task.add_done_callback(_retrieve_exception)
            task.add_done_callback(lambda done: self._info_fetched(path, done))
            self._info_fetches[path] = task
        return await asyncio.shield(task)

    def _info_fetched(self, path: str, task: asyncio.Task[Any]) -> None:
        if self._info_fetches.get(path) is task:
            del self._info_fetches[path]

    async def _fetch_info(self, path: str, *, retries: int | None = None) -> tuple[Any, str | None]:
        """``/api/info`` of ``path`` and the version (ETag) its data has.

        An unfolded HDF5 proxy ``.b2nd`` serves the data of its source ``.h5`` file, which can be
        replaced while the proxy file stays the same (same ETag): its version joins both ETags,
        so the chunk cache and the open-time checks see the change.
        """
        try:
            info, etag = await self._get_json("info", path, retries=retries)
        except Caterva2HTTPError as exc:
            if type(exc) is not Caterva2HTTPError or exc.status != 500:
                raise
            # the bare "Internal Server Error" says nothing: name the known causes (an HDF5
            # file's, also for a dataset inside one)
            if any(part.endswith(HDF5_SUFFIXES) for part in path.split("/")):
                causes = _H5_LIST_500
            else:
                causes = (
                    "user metadata (vlmeta) holding numpy arrays or bytes that are not UTF-8, "
                    "which the server cannot turn into JSON (store lists and str instead), and "
                    "saved lazy expressions"
                )
            raise Caterva2HTTPError(
                exc.url,
                exc.status,
                f"{exc.detail or 'Internal Server Error'} (the server failed to describe "
                f"{path}; its log says why. Known causes: {causes})",
            ) from None
        source = _proxy_source(path, info)
        if source is not None:
            for suffix in HDF5_SUFFIXES:
                try:
                    _, source_etag = await self.client.get_json(
                        "info", source + suffix, retries=retries
                    )
                except FileNotFoundError:
                    continue
                etag = f"{etag or info.get('mtime')}+{source_etag}"
                break
        return info, etag

    async def _get_json(
        self, verb: str, path: str, *, retries: int | None = None
    ) -> tuple[Any, str | None]:
        """The client's ``get_json``, answered from the running ``du``'s answers when it read
        this one already (see :data:`_WALK_ANSWERS`)."""
        answers = _WALK_ANSWERS.get()
        if answers is None:
            return await self.client.get_json(verb, path, retries=retries)
        key = (verb, path)
        if key not in answers:
            answers[key] = await self.client.get_json(verb, path, retries=retries)
        answer: tuple[Any, str | None] = answers[key]
        return answer

    def _remember(self, ds: Dataset) -> Dataset:
        """Take ``ds`` as the current description (metadata was just rendered from it)."""
        self._datasets[ds.path] = ds
        self._checked[ds.path] = time.monotonic()
        self._changed.pop(ds.path, None)
        if self.cache is not None:
            self.cache.set_version(self._cache_server(ds.path), ds.path, ds.version)
        return ds

    async def _dataset(self, path: str) -> Dataset:
        """The dataset at ``path`` for a chunk read (``FileNotFoundError`` if not a dataset).

        The description is cached per instance and re-checked against the server every
        ``version_check_interval`` seconds; a changed version makes every further chunk read of
        that dataset fail until the store is reopened (its Zarr metadata would no longer match).
        """
        path = self._aliases.get(path, path)
        if path in self._changed:
            raise Caterva2DataError(self.client.url("info", path), 200, self._changed[path])
        ds = self._datasets.get(path)
        if ds is not None:
            if self._described_lately(path):
                return ds
            # one re-check shared by the reads that find the description stale at once (each
            # sent its own: zarr's ten reads in flight made ten /api/info per interval)
            loop = asyncio.get_running_loop()
            task = self._rechecks.get(path)
            if task is None or task.get_loop() is not loop or task.done():
                task = loop.create_task(self._recheck_now(ds))
                task.add_done_callback(_retrieve_exception)
                self._rechecks[path] = task
            await asyncio.shield(task)
            return ds
        try:
            info, etag = await self._fetch_info(path)
        except FileNotFoundError:
            parent, name = posixpath.split(path)
            if name and posixpath.basename(parent) == name:  # the child of a dataset's group view
                self._aliases[path] = parent
                return await self._dataset(parent)
            raise
        if is_group_info(info):
            raise FileNotFoundError(f"{self.unstrip_protocol(path)} is a group, not an array")
        ds = dataset_from_info(path, info, etag)
        opened = self._opened_versions.get(path, ds.version)
        if opened != ds.version:
            raise self._version_changed(path, opened, ds.version, "since the array was opened")
        return self._remember(ds)

    def _described_lately(self, path: str) -> bool:
        """Whether dataset ``path`` was described (or re-checked) within
        ``version_check_interval``: as fresh as a chunk read or a metadata read trusts it."""
        return time.monotonic() - self._checked.get(path, -math.inf) <= self.version_check_interval

    async def _recheck_now(self, ds: Dataset) -> None:
        """:meth:`_recheck`, then restart the dataset's ``version_check_interval``."""
        try:
            await self._recheck(ds)
            self._checked[ds.path] = time.monotonic()
        finally:
            if self._rechecks.get(ds.path) is asyncio.current_task():
                del self._rechecks[ds.path]

    async def _recheck(self, ds: Dataset) -> None:
        """Raise :class:`Caterva2DataError` unless ``ds`` is still the server's version (a
        vanished dataset too: a ``FileNotFoundError`` would reach zarr as a missing chunk and
        read as fill values)."""
        path = ds.path
        try:
            info, etag = await self._fetch_info(path)
            now = dataset_from_info(path, info, etag)
        except (FileNotFoundError, UnsupportedCaterva2DatasetError) as exc:
            self._changed[path] = f"dataset {path} vanished or changed on the server: {exc}"
            url = self.client.url("info", path)
            raise Caterva2DataError(url, 404, self._changed[path]) from None
        if now.version != ds.version:
            raise self._version_changed(path, ds.version, now.version, "while open")

    def _cache_server(self, path: str) -> str:
        """The server part of ``path``'s chunk cache key: the base URL, plus who reads for
        ``@personal`` datasets (two users' ``@personal/x.b2nd`` are different files; the cache
        hashes the key, so no name or token shows in a folder name)."""
        if path.split("/", 1)[0] != "@personal":
            return self.base_url
        return f"{self.base_url}\n{self.client.identity or 'anonymous'}"

    def _version_changed(
        self, path: str, old: str | None, new: str | None, when: str
    ) -> Caterva2DataError:
        """Record that ``path`` changed on the server; the error every further chunk read of it
        raises until the store is reopened."""
        self._changed[path] = (
            f"dataset {path} changed on the server {when} (version {old} → {new}); reopen it to "
            "read the new data"
        )
        return Caterva2DataError(self.client.url("info", path), 200, self._changed[path])

    async def _list_tree(self, node: str) -> dict[str, str]:
        """Relative dataset paths below group ``node`` → their kind (``"dataset"``/``"group"``).

        Suffixes match as the server matches them, case included (``F.H5`` is a plain file).
        Everything listed inside a container (an HDF5 file, a ``.b2z`` TreeStore/DictStore) is
        a dataset, whatever its name. Names with a backslash are left out (zarr would read it
        as ``/``).
        """
        names = await self._get_json("list", node)
        listing = names[0]
        if not isinstance(listing, list):
            raise Caterva2HTTPError(self.client.url("list", node), 200, "listing is not a list")
        inside_container = any(p.endswith(CONTAINER_SUFFIXES) for p in node.split("/"))
        out: dict[str, str] = {}
        nested: list[str] = []
        for rel in listing:
            rel = str(rel).strip("/")
            if not rel:
                continue
            if inside_container or rel.endswith(DATASET_SUFFIXES):
                kind = "dataset"
            elif rel.endswith(CONTAINER_SUFFIXES):
                kind = "group"
            else:
                continue  # a plain file
            if "\\" in rel:
                # zarr reads "\\" in a key as "/": the entry would break the whole group
                # (KeyError ... not found in consolidated metadata), so leave it out
                logger.warning(
                    "b2store: leaving Caterva2 %s/%s out of its group: zarr cannot name members "
                    "with a backslash; open it by its own URL",
                    node,
                    rel,
                )
                continue
            out[rel] = kind
            if kind == "group":
                nested.append(rel)
        listed = await asyncio.gather(
            *(self._list_subtree(f"{node}/{rel}" if node else rel) for rel in nested)
        )
        for rel, sub in zip(nested, listed, strict=True):
            if sub is None:  # the server fails on it: left out, with a warning
                del out[rel]
        nested = [rel for rel, sub in zip(nested, listed, strict=True) if sub is not None]
        subs = [sub for sub in listed if sub is not None]
        # the server lists a file it does not browse as itself: a .b2z holding a CTable, a
        # damaged HDF5 file; /api/info tells those from a container holding one dataset named
        # after the file
        lone = [
            rel
            for rel, sub in zip(nested, subs, strict=True)
            if list(sub) == [posixpath.basename(rel)]
        ]
        groups = await asyncio.gather(
            *(self._is_group(f"{node}/{rel}" if node else rel) for rel in lone)
        )
        not_browsed = {rel for rel, group in zip(lone, groups, strict=True) if not group}
        for rel, sub in zip(nested, subs, strict=True):
            full = f"{node}/{rel}" if node else rel
            if rel in not_browsed:
                # what it is, its own URL says
                logger.warning(
                    "b2store: leaving Caterva2 %s out of its group: the server does not browse "
                    "it as a container (a CTable .b2z, a damaged file?); open it by its own URL "
                    "to see why",
                    full,
                )
                del out[rel]
                continue
            for child, kind in sub.items():
                out[f"{rel}/{child}"] = kind
        return out

    async def _list_subtree(self, path: str) -> dict[str, str] | None:
        """:meth:`_list_tree` of a container below the group being listed; ``None`` (and a
        warning) when the server fails on it (500), so one file does not fail its directory."""
        try:
            return await self._list_tree(path)
        except Caterva2HTTPError as exc:
            if type(exc) is not Caterva2HTTPError or exc.status != 500:
                raise
            hint = f" {_H5_LIST_500}" if path.endswith(HDF5_SUFFIXES) else ""
            logger.warning(
                "b2store: leaving Caterva2 %s out of its group: the server fails to list it (%s)%s",
                path,
                exc,
                hint,
            )
            return None

    async def _is_group(self, path: str) -> bool:
        """Whether ``/api/info`` of ``path`` describes a group (directory or container)."""
        try:
            info, _ = await self.client.get_json("info", path)
        except (FileNotFoundError, Caterva2HTTPError):
            return False
        return is_group_info(info)

    async def _group_nodes(self, node: str) -> dict[str, Node]:
        tree = await self._list_tree(node)
        nodes: dict[str, Node] = {"": GroupMeta()}
        for rel, kind in tree.items():
            parts = rel.split("/")
            for i in range(1, len(parts)):
                nodes.setdefault("/".join(parts[:i]), GroupMeta())
            if kind == "group":
                nodes.setdefault(rel, GroupMeta())
        rels = [rel for rel, kind in tree.items() if kind == "dataset"]

        default_named: set[str] = set()

        async def one(rel: str) -> tuple[str, Any]:
            full = f"{node}/{rel}" if node else rel
            try:
                info, etag = await self._fetch_info(full)
                if is_group_info(info):
                    return rel, None
                ds = self._remember(dataset_from_info(full, info, etag))
                if ds.dimension_names is None:
                    default_named.add(rel)
                return rel, ds.array_meta(posixpath.basename(rel))
            except (UnsupportedCaterva2DatasetError, FileNotFoundError) as exc:
                logger.warning("b2store: skipping Caterva2 dataset %s: %s", full, exc)
                return rel, None
            except Caterva2HTTPError as exc:
                if exc.status == 500:  # e.g. saved lazy expressions the server cannot open
                    logger.warning("b2store: skipping Caterva2 dataset %s: %s", full, exc)
                    return rel, None
                raise

        for rel, meta in await asyncio.gather(*(one(r) for r in rels)):
            if meta is not None:
                nodes[rel] = meta
        nodes = unclash_dimensions(nodes, default_named)
        # a flat .b2z DictStore may hold keys "/a" and "/a/b": Zarr has no members below an
        # array (a KeyError took the whole group down), so those below one are left out
        arrays = {rel for rel, meta in nodes.items() if not isinstance(meta, GroupMeta)}
        for rel in list(nodes):
            parts = rel.split("/")
            below = next(
                (a for i in range(1, len(parts)) if (a := "/".join(parts[:i])) in arrays), None
            )
            if below is not None:
                del nodes[rel]
                if rel in arrays:
                    logger.warning(
                        "b2store: leaving Caterva2 %s/%s out of its group: it lies below the "
                        "dataset %s/%s, and Zarr has no members below an array; open it by its "
                        "own URL",
                        node,
                        rel,
                        node,
                        below,
                    )
        return nodes

    async def _node(self, node: str) -> tuple[list[Node] | Dataset, bool]:
        """What ``node`` is, from ``/api/info``: a group's nodes or a dataset (a dataset described
        within ``version_check_interval`` is not asked for again).

        Returns ``(nodes or dataset, alias)``; ``alias`` is True when ``node`` is the array
        inside the group view of a dataset (``<dataset>/<file name>``), which is then returned.
        """
        if not node:
            raise FileNotFoundError(
                f"{self.base_url}: open a root or a path below it, e.g. "
                f"{self.protocol}://{self.host}/@public"
            )
        alias = node in self._aliases
        node = self._aliases.get(node, node)
        known = self._datasets.get(node)
        if known is not None and node not in self._changed and self._described_lately(node):
            # described moments ago (zarr and xarray read a dataset's metadata keys several
            # times per open): as fresh as a chunk read trusts it, without another /api/info,
            # which carries the dataset's whole user metadata
            return known, alias
        try:
            info, etag = await self._shared_info(node)
        except FileNotFoundError:
            if "/" not in node and node.startswith("@"):
                # a root the server lists but has no folder for yet answers info with 404: a
                # user's @personal before their first upload is an empty group, not missing
                roots, _ = await self.client.get_json("roots")
                if isinstance(roots, dict) and node in roots:
                    return [GroupMeta()], False
                raise await self._missing(node) from None
            parent, name = posixpath.split(node)
            if alias or not name or posixpath.basename(parent) != name:
                raise await self._missing(node) from None
            try:
                # <dataset>/<name>: the group view's child
                info, etag = await self._fetch_info(parent)
            except FileNotFoundError:
                raise await self._missing(node) from None
            if is_group_info(info):
                raise await self._missing(node) from None
            alias, node = True, parent
            self._aliases[f"{parent}/{name}"] = parent
        if is_group_info(info) or ("/" not in node and node.startswith("@")):
            return [GroupMeta()], False
        return self._remember(dataset_from_info(node, info, etag)), alias

    async def _missing(self, node: str) -> Caterva2MissingError:
        """The error for ``node``, which the server answered 404 for: its URL, whether its root
        or the node is missing, and where to see what exists.

        The server's roots are asked for only when the root is not ``@public`` (a misspelt root,
        or ``@personal``/``@shared`` without a login), and only for this message."""
        url = self.unstrip_protocol(node)
        root = node.split("/", 1)[0]
        roots: list[str] | None = None
        if root != "@public":
            try:
                answer, _ = await self.client.get_json("roots")
            except (OSError, ValueError, TypeError):
                answer = None  # only the message needs it
            if isinstance(answer, dict):
                roots = sorted(map(str, answer))
        if roots is not None and root not in roots:
            server = f"{self.protocol}://{self.host}"
            login = (
                ""
                if self.client.has_credentials
                else "; @personal and @shared need a login (username/password or token)"
            )
            return Caterva2MissingError(
                f"{url}: the server has no root {root!r}. Its roots are "
                f"{', '.join(roots) or 'none'}: URLs read {server}/<root>/<path>, such as "
                f"{server}/@public/<path>{login}"
            )
        parent = posixpath.dirname(node) or root
        where = self.unstrip_protocol(parent)
        return Caterva2MissingError(
            f"{url}: no such dataset or directory was found on the Caterva2 server (HTTP 404). "
            f"See what {where} holds with `b2store info {where}` or fs.ls({parent!r})"
        )

    async def _missing_chunk_key(self, key: str, node: str) -> Caterva2MissingError:
        """The error for chunk ``key`` of a dataset ``node`` the server did not describe: the
        dataset's own "not found" error when it is missing, else (a directory or HDF5 group
        ``node``, which has no chunk keys) the key's."""
        try:
            await self._node(node)
        except FileNotFoundError as missing:
            return Caterva2MissingError(
                f"{self.unstrip_protocol(key)}: a chunk key of a dataset the server does not "
                f"have. {missing}"
            )
        return await self._missing(key)

    async def _metadata(self, node: str) -> bytes:
        """The ``zarr.json`` of ``node`` (group or array), from ``/api/info`` (:meth:`_node`)."""
        if not node:
            # the server itself: a group of its roots, found by listing them (consolidated
            # metadata here would describe every dataset on the server)
            return json.dumps(group_v3(GroupMeta())).encode()
        what, alias = await self._node(node)
        if isinstance(what, list):
            return render_v3(await self._group_nodes(self._aliases.get(node, node)))["zarr.json"]
        if self.dataset_as == "auto":
            raise FileNotFoundError(
                f"{self.unstrip_protocol(node)}/zarr.json: with dataset_as='auto' a dataset is "
                "served as Zarr v2 (.zarray, .zgroup); pass dataset_as='array' or 'group' for v3"
            )
        return self._dataset_keys(what, alias)["zarr.json"]

    def _dataset_keys(self, ds: Dataset, alias: bool) -> dict[str, bytes]:
        """The metadata keys (name → bytes) of dataset ``ds`` at its path (``alias``: at the
        path of the array inside its group view) for this instance's ``dataset_as``.

        ``dataset_as="auto"``: at the dataset's own path ``.zarray``/``.zattrs`` describe the
        dataset as an array (chunk keys ``0.0…`` at that path) and ``.zgroup``/``.zmetadata`` a
        group holding it as ``<file name>`` (consolidated). ``.zattrs`` serves both: the
        dataset's attributes, without ``_ARRAY_DIMENSIONS``, which only the child array carries.
        Otherwise one ``zarr.json``: the v3 array, or the v3 group holding it.
        """
        name = posixpath.basename(ds.path)
        meta: ArrayMeta = ds.array_meta(name)
        if self.dataset_as != "auto":
            if self.dataset_as == "group" and not alias:
                self._aliases[f"{ds.path}/{name}"] = ds.path
                return {"zarr.json": render_v3({"": GroupMeta(), name: meta})["zarr.json"]}
            return {"zarr.json": render_v3({"": meta})["zarr.json"]}
        if _nested(ds.dtype):
            raise UnsupportedCaterva2DatasetError(
                f"{self.unstrip_protocol(ds.path)} has a nested structured dtype ({ds.dtype}), "
                "which zarr-python cannot read from Zarr v2 metadata, the dual view of a dataset "
                "URL: open its directory or HDF5 file (Zarr v3) and take the array from there, or "
                "pass dataset_as='array' or 'group'"
            )
        zarray, zattrs = array_v2(meta)
        if alias:
            docs: dict[str, Any] = {".zarray": zarray, ".zattrs": zattrs}
        else:
            self._aliases[f"{ds.path}/{name}"] = ds.path
            top = {k: v for k, v in zattrs.items() if k != "_ARRAY_DIMENSIONS"}
            group = {".zgroup": {"zarr_format": 2}, ".zattrs": top}
            consolidated = {**group, f"{name}/.zarray": zarray, f"{name}/.zattrs": zattrs}
            docs = {
                ".zarray": zarray,
                **group,
                ".zmetadata": {"zarr_consolidated_format": 1, "metadata": consolidated},
            }
        return {k: json.dumps(v, allow_nan=True).encode() for k, v in docs.items()}

    async def _metadata_v2(self, node: str, key: str) -> bytes:
        """A Zarr v2 key of the dual view of a dataset (``dataset_as="auto"``; see
        :meth:`_dataset_keys`)."""
        where = self.unstrip_protocol(f"{node}/{key}")
        if self.dataset_as != "auto":
            raise FileNotFoundError(
                f"{where}: with dataset_as={self.dataset_as!r} b2store serves Zarr v3 only"
            )
        what, alias = await self._node(node)
        if isinstance(what, list):
            raise FileNotFoundError(f"{where}: directories and HDF5 groups are Zarr v3 groups")
        docs = self._dataset_keys(what, alias)
        if key not in docs:
            raise FileNotFoundError(f"{where}: the array of a dataset's group view has no {key}")
        return docs[key]

    # -- chunks ------------------------------------------------------------------------------------

    @staticmethod
    def _chunk_key_readings(path: str) -> list[tuple[str, tuple[int, ...], int]]:
        """Every ``(node, chunk coords, zarr format)`` reading of a chunk key, v3 first; empty
        for other paths.

        Zarr v3 keys are ``<node>/c/i/j`` (``<node>/c`` for 0-d), v2 keys ``<node>/i.j``
        (``<node>/0`` for 0-d: the caller maps it to ``()``). A path can read both ways:
        ``grp/c/0`` is v3 chunk 0 of ``grp``, or v2 chunk 0 of a dataset ``grp/c``.
        """
        out: list[tuple[str, tuple[int, ...], int]] = []
        parts = path.split("/")
        coords: list[int] = []
        while parts and parts[-1].isdigit():
            coords.append(int(parts.pop()))
        if len(parts) >= 2 and parts[-1] == "c":
            out.append(("/".join(parts[:-1]), tuple(reversed(coords)), 3))
        node, _, last = path.rpartition("/")
        if node and _V2_CHUNK_KEY.fullmatch(last):
            out.append((node, tuple(int(i) for i in last.split(".")), 2))
        return out

    def _request(
        self, ds: Dataset, number: int, coords: tuple[int, ...]
    ) -> tuple[str, str, dict[str, str]]:
        """Cache key, URL and query of the server request for one chunk."""
        if ds.mode == SLICE:
            region = ds.chunk_region(coords)
            spans = [f"{s.start}:{s.stop}" for s in region[: len(region) - ds.item_dims]]
            params: dict[str, str] = {}
            if spans and ds.region_param == "indices":
                params = {"indices": json.dumps(spans)}
            elif spans:
                params = {"slice_": ",".join(spans)}
            # the Zarr chunk shape is b2store's choice, not the server's: it joins the key, so a
            # cache shared with another b2store (another shape for the same coordinates) can
            # never serve another region
            key = "s" + "_".join(map(str, coords)) + "-" + "x".join(map(str, ds.chunks))
            return key, self.client.url("fetch", ds.path), params
        if number >= ds.nchunks:
            raise Caterva2HTTPError(
                self.client.url("chunk", ds.path),
                0,
                f"chunk {coords} → {number} is beyond the {ds.nchunks} chunks the server "
                "reports; the dataset info is inconsistent",
            )
        return str(number), self.client.url("chunk", ds.path), {"nchunk": str(number)}

    async def _load(self, ds: Dataset, number: int, coords: tuple[int, ...]) -> bytes:
        """Checked server bytes of one chunk: from the disk cache, or fetched (and cached)."""
        key, url, params = self._request(ds, number, coords)
        raw = None
        server = self._cache_server(ds.path)
        if self.cache is not None:
            raw = await asyncio.to_thread(self.cache.get, server, ds.path, ds.version, key)
        fetched = raw is None
        try:
            if raw is None:
                try:
                    raw = (await self.client.get(url, params)).body
                except FileNotFoundError as exc:  # the dataset vanished: not a missing chunk
                    raise Caterva2HTTPError(
                        url, 404, f"dataset disappeared while reading: {exc}"
                    ) from None
            if ds.mode == SLICE:
                check_frame(url, ds, raw)
            else:
                check_chunk(url, ds, number, raw)
        except Caterva2HTTPError as exc:
            await self._explain_failure(ds, exc)
            if ds.kind == "hdf5" and type(exc) is Caterva2HTTPError and exc.status == 500:
                # the bare "Internal Server Error" says nothing: name the known causes
                raise Caterva2HTTPError(
                    exc.url, exc.status, f"{exc.detail or 'Internal Server Error'} {_H5_500}"
                ) from None
            raise
        if fetched and (
            self.version_check_interval <= 0
            or (
                self.cache is not None
                and await asyncio.to_thread(self.cache.superseded, server, ds.path, ds.version)
            )
        ):
            # the version was checked before this request; the file may have been replaced
            # between that check and the chunk request: check again, so that bytes of a newer
            # version neither mix into this array nor go into the cache under the old version.
            # Also when another process sharing the cache has since read another version (it
            # dropped this version's entries): its bytes would have gone into the cache under
            # this old version, to be served if the file ever got this version back (cp -p)
            await self._recheck(ds)
        if fetched and self.cache is not None:
            await asyncio.to_thread(
                self.cache.put,
                server,
                ds.path,
                ds.version,
                key,
                raw,
                private=self.client.has_credentials,
            )
        return raw

    async def _explain_failure(self, ds: Dataset, exc: Exception) -> None:
        """After a failed chunk read, re-check the dataset's version: a dataset rewritten with
        fewer chunks (the server answers 500) or another layout raises the "changed on the
        server, reopen it" error instead of a bare server error. Returns if nothing changed.

        One attempt, no retries: on a server that keeps failing this adds one request per
        failed chunk, not another round of retries."""
        try:
            info, etag = await self._fetch_info(ds.path, retries=0)
            now = dataset_from_info(ds.path, info, etag)
        except (FileNotFoundError, UnsupportedCaterva2DatasetError) as gone:
            self._changed[ds.path] = f"dataset {ds.path} vanished or changed on the server: {gone}"
            raise Caterva2DataError(
                self.client.url("info", ds.path), 404, self._changed[ds.path]
            ) from exc
        except (OSError, ValueError, KeyError, TypeError):
            return  # the server is failing or answers oddly: the original error says so
        if now.version != ds.version:
            raise self._version_changed(ds.path, ds.version, now.version, "while open") from exc

    def _task(self, ds: Dataset, number: int, coords: tuple[int, ...]) -> asyncio.Task[bytes]:
        """The (shared) load of one chunk: concurrent and ranged reads of a chunk load it once.

        Finished loads stay in memory, least recently used first out, within
        ``memory_cache_size`` bytes; failed ones are forgotten so the next read tries again.
        """
        key = (ds.path, ds.version, number)
        loop = asyncio.get_running_loop()
        task = self._loads.get(key)
        if task is not None and task.get_loop() is loop:
            self._loads.move_to_end(key)
            if not (task.done() and (task.cancelled() or task.exception() is not None)):
                return task
        task = loop.create_task(self._load(ds, number, coords))
        task.add_done_callback(_retrieve_exception)
        if self._running_loop is not loop:
            self._running_loop, self._running = loop, 0
        self._running += 1
        task.add_done_callback(self._load_done)
        self._forget_load(key)
        self._loads[key] = task
        task.add_done_callback(lambda done: self._loaded(key, done))
        return task

    def _load_done(self, task: asyncio.Task[bytes]) -> None:
        if task.get_loop() is self._running_loop:
            self._running -= 1

    def _loaded(self, key: tuple[str, str, int], task: asyncio.Task[bytes]) -> None:
        """Count a finished load's bytes and trim the loads kept in memory to the limit.

        A running total, not a pass over every load: a read of 10^5 small chunks would
        otherwise cost 10^5 passes over up to 10^5 loads."""
        if self._loads.get(key) is task and _succeeded(task):
            n = len(task.result())
            self._load_sizes[key] = n
            self._loads_bytes += n
            self._trim_loads()

    def _forget_load(self, key: tuple[str, str, int]) -> None:
        # subtract exactly what the load counted: a load can finish (done()) before its
        # callback counted it, and another callback's trim may drop it in between
        self._loads.pop(key, None)
        self._loads_bytes -= self._load_sizes.pop(key, 0)

    def _trim_loads(self) -> None:
        """Drop finished loads, least recently used first, until within ``memory_cache_size``
        (loads still running stay: readers wait for them)."""
        while self._loads_bytes > self.memory_cache_size:
            oldest = next((k for k in self._loads if k in self._load_sizes), None)
            if oldest is None:
                return
            self._forget_load(oldest)

    def _note_read(self, path: str, number: int) -> bool:
        """Note a read of chunk ``number``; whether it continues a read in order: the two
        chunks before it were asked for in earlier event-loop iterations (zarr asks for all
        chunks of a selection at once; a run of two in each row of chunks of a 2-chunk-wide
        column is no scan)."""
        recent = self._recent.setdefault(path, collections.deque(maxlen=16))
        sequential = (number - 1) in recent and (number - 2) in recent
        self._in_batch(path, number)
        self._latest[path] = number
        return sequential

    def _start_readahead(self, ds: Dataset, number: int) -> None:
        """Prefetch the chunks after ``number``, just loaded for a read in order (see
        :meth:`_note_read`) after which no other chunk of the dataset was asked for: a reader
        one chunk at a time (a dask task per chunk) would otherwise have few requests in
        flight.

        A reader that asked for further chunks meanwhile needs none: zarr reading a selection
        asks for its chunks ten at a time, and readahead fetched chunks outside it (a 2x2-chunk
        slice fetched 12 chunks, a 2-chunk-wide column of a 2-D array three times its chunks,
        4 more past the end of each row of chunks). Nor is more prefetched than the
        connections the running loads leave free.
        """
        ahead = min(self.readahead, self._config.max_concurrency - self._running)
        if self.cache is None:
            # without a disk cache a prefetched chunk lives in memory only: prefetch no more
            # than memory_cache_size keeps (counted decompressed, so never too many), else
            # the chunk is dropped before it is read and fetched a second time
            ahead = min(ahead, self.memory_cache_size // max(ds.chunk_nbytes, 1))
        if ds.mode == SLICE or ahead <= 0:
            return
        for m in range(number + 1, min(number + 1 + ahead, ds.nchunks)):
            if (ds.path, ds.version, m) not in self._loads:
                coords = tuple(int(c) for c in np.unravel_index(m, ds.grid))
                self._task(ds, m, coords)

    def _in_batch(self, path: str, number: int) -> None:
        """Note ``number`` as asked for in this loop iteration; the next iteration moves the
        iteration's numbers into ``_recent``."""
        loop = asyncio.get_running_loop()
        if self._batch_loop is not loop:
            self._batch_loop = loop
            self._batch = {}
            loop.call_soon(self._end_batch, loop)
        self._batch.setdefault(path, []).append(number)

    def _end_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._batch_loop is not loop:
            return  # another loop's batch started meanwhile (one instance, several loops)
        for path, numbers in self._batch.items():
            recent = self._recent.setdefault(path, collections.deque(maxlen=16))
            for n in numbers:
                if n not in recent:
                    recent.append(n)
        self._batch = {}
        self._batch_loop = None

    async def _chunk(self, ds: Dataset, coords: tuple[int, ...]) -> bytes:
        number = ds.chunk_number(coords)  # FileNotFoundError off the grid: no request sent
        task = self._task(ds, number, coords)
        sequential = self._note_read(ds.path, number)
        raw = await asyncio.shield(task)
        if sequential and self._latest.get(ds.path) == number:
            self._start_readahead(ds, number)
        special = special_header(ds, raw)  # parsed once, for both calls below
        if passes_through(ds, number, special):
            return raw
        return await asyncio.to_thread(to_zarr_chunk, ds, number, coords, raw, special)

    # -- fsspec interface --------------------------------------------------------------------------

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        path = self._strip_protocol(path)
        data = await self._read_key(path)
        if start is not None or end is not None:
            data = data[start:end]
        return data

    async def _read_key(self, path: str, *, probing: bool = False) -> bytes:
        name = posixpath.basename(path)
        if name == "zarr.json" or name in _V2_KEYS:
            try:
                if name == "zarr.json":
                    data = await self._metadata(posixpath.dirname(path))
                else:
                    data = await self._metadata_v2(posixpath.dirname(path), name)
            except Caterva2MissingError as missing:
                if probing or not self._url_credentials or self._served_metadata:
                    raise
                raise Caterva2URLNotFoundError(
                    f"{missing} (raised instead of FileNotFoundError because the URL holds "
                    "credentials, which zarr would repeat in its own error)"
                ) from None
            self._served_metadata = True
            return data
        readings = self._chunk_key_readings(path)
        if not readings:
            if probing:
                raise FileNotFoundError(f"{self.unstrip_protocol(path)} is not a Zarr key")
            await self._node(path)  # a missing path says so (and where to look)
            url = self.unstrip_protocol(path)
            raise IsADirectoryError(
                f"{url} is a Zarr group or a dataset's view, not a key: read one of its keys "
                f"({url}/zarr.json, or .zarray for a dataset), or open the URL with zarr or xarray"
            )
        for node, coords, zarr_format in readings:
            try:
                ds = await self._dataset(node)
            except FileNotFoundError:
                continue  # e.g. ".../h.h5/c/0": not chunk 0 of a group, but a dataset named c
            if zarr_format == 2 and not ds.shape and coords == (0,):
                coords = ()  # the v2 key of a 0-d array's only chunk is "0"
            if not ds.in_grid(coords):  # a missing key: no request sent
                raise _ChunkOutsideGridError(_off_grid(self.unstrip_protocol(path), ds, coords))
            # noted: a codec that cannot decode it names the dataset and chunk (zarr does not)
            return note_chunk(await self._chunk(ds, coords), self, path)
        if probing:
            raise FileNotFoundError(f"{self.unstrip_protocol(path)} is not a chunk of a dataset")
        opened = self._served_metadata or bool(self._opened_versions)
        if not opened and not any(n in self._changed for n, _, _ in readings):
            # no array was opened through this instance (fs.cat_file of a key by hand): the
            # dataset is simply missing, and zarr, which reads chunk keys only of arrays it
            # opened, is not the reader
            raise await self._missing_chunk_key(path, readings[0][0])
        # zarr reads chunk keys only of arrays it has opened: a missing dataset here was deleted
        # or replaced since; a FileNotFoundError would make zarr serve fill values instead
        nodes = " or ".join(dict.fromkeys(node for node, _, _ in readings))
        raise Caterva2DataError(
            self.client.url("info", readings[0][0]),
            404,
            f"no dataset at {nodes} for chunk key {path}: deleted, renamed or turned into a "
            "directory on the server since the array was opened; reopen it",
        )

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        """Whether ``path`` exists; a chunk key is answered from its dataset's chunk grid (every
        chunk in the grid exists on the server), without fetching the chunk."""
        path = self._strip_protocol(path)
        name = posixpath.basename(path)
        if name != "zarr.json" and name not in _V2_KEYS:
            for node, coords, zarr_format in self._chunk_key_readings(path):
                try:
                    ds = await self._dataset(node)
                except FileNotFoundError:
                    continue  # not a chunk of this reading: e.g. ".../h.h5/c/0"
                if zarr_format == 2 and not ds.shape and coords == (0,):
                    coords = ()
                return ds.in_grid(coords)
        try:
            await self._info(path)
        except FileNotFoundError:
            return False
        return True

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        try:
            return await self._info_of(path)
        except UnsupportedCaterva2DatasetError as exc:
            # a plain file (or a dataset b2store cannot present) is no part of the Zarr view:
            # fsspec's exists/isdir expect FileNotFoundError for that, not a crash
            raise FileNotFoundError(f"{self.unstrip_protocol(path)}: {exc}") from None

    async def _info_of(self, path: str) -> dict[str, Any]:
        name = posixpath.basename(path)
        off_grid: _ChunkOutsideGridError | None = None
        if name == "zarr.json" or name in _V2_KEYS or self._chunk_key_readings(path):
            try:
                data = await self._read_key(path, probing=True)
                return {"name": path, "size": len(data), "type": "file"}
            except _ChunkOutsideGridError as exc:
                off_grid = exc  # unless a node of that name exists (checked below)
            except FileNotFoundError:
                if name == "zarr.json" or name in _V2_KEYS:
                    raise
                # not a chunk after all: e.g. an HDF5 dataset named "3" (checked below)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        try:
            await self._node(path)
        except FileNotFoundError:
            if off_grid is not None:
                raise off_grid from None  # was "Caterva2 has no .../api/info/<dataset>/c/9"
            readings = self._chunk_key_readings(path)
            if readings:  # was named as a missing directory ("see what .../c/0 holds")
                raise await self._missing_chunk_key(path, readings[0][0]) from None
            raise
        return {"name": path, "size": 0, "type": "directory"}

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        # zarr's FsspecStore.list_dir strips "<store path>/<prefix>/" from the names: at the
        # server root (store path "") it asks for "/<root>", so answer in that form
        lead = "/" if str(path).startswith("/") and not str(path).startswith("//") else ""
        stripped = self._strip_protocol(path)
        try:
            entries = await self._ls_entries(stripped)
        except UnsupportedCaterva2DatasetError as exc:
            # as in _info: a file b2store cannot present is no part of the Zarr view, and
            # fsspec's walk/find/glob/du skip FileNotFoundError (one damaged file in a
            # directory made all of them fail)
            raise FileNotFoundError(f"{self.unstrip_protocol(stripped)}: {exc}") from None
        except FileNotFoundError:
            name = posixpath.basename(stripped)
            is_key = name == "zarr.json" or name in _V2_KEYS
            if not is_key and not self._chunk_key_readings(stripped):
                raise
            # a key: listed as itself, as fsspec's local and memory filesystems do (was
            # "Caterva2 has no .../api/info/<key>" for a key that info and cat read)
            entries = [await self._info(stripped)]
        if lead:
            entries = [{**e, "name": lead + e["name"]} for e in entries]
        return entries if detail else [e["name"] for e in entries]

    async def _ls_entries(self, path: str) -> list[dict[str, Any]]:
        if not path:
            roots, _ = await self.client.get_json("roots")
            names = sorted(roots)
            entries = [{"name": n, "size": 0, "type": "directory"} for n in names]
        else:
            what, alias = await self._node(path)
            if isinstance(what, list):
                tree = await self._list_tree(self._aliases.get(path, path))
                files = ["zarr.json"]
                dirs = sorted({rel.split("/")[0] for rel in tree})
            else:
                # a dataset: its metadata keys, rendered from the info just read (so their sizes
                # are known: fs.du asked the server again for every key); chunk keys are not
                # listed (see _exists), so neither is the v3 "c" folder
                keys = self._dataset_keys(what, alias)
                order = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")
                entries = [
                    {"name": f"{path}/{f}", "size": len(keys[f]), "type": "file"}
                    for f in order
                    if f in keys
                ]
                if not alias and self.dataset_as in ("auto", "group"):
                    child = posixpath.basename(what.path)
                    entries.append({"name": f"{path}/{child}", "size": 0, "type": "directory"})
                return entries
            entries = [{"name": f"{path}/{f}", "size": None, "type": "file"} for f in files]
            entries += [{"name": f"{path}/{d}", "size": 0, "type": "directory"} for d in dirs]
        return entries

    async def _find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any
    ) -> Any:
        """fsspec's ``find``, listing each level's nodes concurrently (fsspec walks one node
        at a time, and each node costs an ``/api/info``: a folder of 300 datasets took 50 s).

        Same results as fsspec's: nodes that fail to list (a damaged dataset) are skipped, or
        with fsspec's ``on_error="raise"`` raise (a callable is given each such error).
        """
        path = self._strip_protocol(path)
        detail = kwargs.pop("detail", False)
        on_error = kwargs.pop("on_error", "omit")
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        out: dict[str, dict[str, Any]] = {}
        if withdirs and path != "" and await self._isdir(path):
            out[path] = await self._info(path)
        level, depth = [path], 1
        #: listings known without a request: the array inside a dataset's group view lists
        #: the keys rendered from the info its dataset's listing just read (listing it again
        #: cost a second /api/info per dataset)
        known: dict[str, list[dict[str, Any]]] = {}
        while level:
            found: list[str] = []
            for start in range(0, len(level), _FIND_BATCH):
                batch = level[start : start + _FIND_BATCH]
                listings = await asyncio.gather(
                    *(
                        _listed(known.pop(p)) if p in known else self._ls(p, detail=True, **kwargs)
                        for p in batch
                    ),
                    return_exceptions=True,
                )
                for parent, listing in zip(batch, listings, strict=True):
                    if isinstance(listing, OSError) and on_error != "raise":
                        if callable(on_error):  # as fsspec's walk
                            on_error(listing)
                        continue
                    if isinstance(listing, BaseException):
                        raise listing
                    for info in listing:
                        name = info["name"].rstrip("/")
                        if name == parent:
                            out[name] = info  # a key listed as itself
                        elif info["type"] == "directory":
                            found.append(name)
                            if withdirs:
                                out[name] = info
                            view = self._view_listing(parent, name)
                            if view is not None:
                                known[name] = view
                        else:
                            out[name] = info
            if maxdepth is not None and depth >= maxdepth:
                break
            level, depth = found, depth + 1
        if not out and await self._isfile(path):
            out[path] = {}
        names = sorted(out)
        return {name: out[name] for name in names} if detail else names

    def _view_listing(self, parent: str, child: str) -> list[dict[str, Any]] | None:
        """The listing of ``child`` when it is the array inside the group view of the
        dataset ``parent`` just listed (its keys, from the description that listing read),
        else ``None``."""
        if child != f"{parent}/{posixpath.basename(parent)}" or self._aliases.get(child) != parent:
            return None
        ds = self._datasets.get(parent)
        if ds is None:
            return None
        keys = self._dataset_keys(ds, alias=True)
        return [{"name": f"{child}/{k}", "size": len(v), "type": "file"} for k, v in keys.items()]

    async def _du(
        self, path: str, total: bool = True, maxdepth: int | None = None, **kwargs: Any
    ) -> Any:
        """fsspec's ``du``, with the sizes the listings hold (a dataset's metadata keys) and
        concurrent ``info`` calls for the others (a directory's ``zarr.json``)."""
        token = _WALK_ANSWERS.set({})  # one description of each node for the whole du
        try:
            found = await self._find(path, maxdepth=maxdepth, detail=True, **kwargs)
            unknown = [name for name, info in found.items() if info.get("size") is None]
            infos = await asyncio.gather(*(self._info(name) for name in unknown))
        finally:
            _WALK_ANSWERS.reset(token)
        sizes = {name: info.get("size") for name, info in found.items()}
        sizes.update({name: info["size"] for name, info in zip(unknown, infos, strict=True)})
        return sum(sizes.values()) if total else sizes

    # -- writes: refused -----------------------------------------------------------------------
    # fsspec's defaults would accept some of them silently (open(..., "wb") buffers and drops the
    # bytes, touch/mkdir/makedirs/rmdir do nothing) or fail without a message (cp, put)

    def _read_only(self, what: str, path: Any) -> PermissionError:
        """The error of every write operation (see :class:`ReadOnlyAsyncFileSystem`)."""
        where = self.unstrip_protocol(self._strip_protocol(path))
        return PermissionError(
            f"{where}: the Caterva2 store is read-only (cannot {what} it); upload data with "
            "caterva2.Client instead"
        )

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise self._read_only(f"open with mode {mode!r}", path)
        if kwargs.get("size") is None:
            info = self.info(path)
            if info["type"] == "directory":
                # fsspec's file would read b"" (size 0): a directory is no key
                raise IsADirectoryError(
                    f"{self.unstrip_protocol(self._strip_protocol(path))} is a Zarr group or a "
                    "dataset's view, not a key: open one of its keys (zarr.json, .zarray, ...), "
                    "or the URL with zarr or xarray"
                )
            kwargs["size"] = info["size"]
        return super()._open(path, mode, **kwargs)

    async def _get(self, rpath: Any, lpath: Any, recursive: bool = False, **kwargs: Any) -> Any:
        """``fs.get`` of keys named one by one; refuses copies of trees and glob patterns
        (a key whose name holds ``*?[`` copies with lists: ``fs.get([key], [local])``).

        Listings hold no chunk keys (datasets may have millions), so a copy made by walking a
        tree would hold the metadata without the chunks: zarr would read fill values from it.
        """
        sources = rpath if isinstance(rpath, list) else [rpath]
        expands = not (isinstance(rpath, list) and isinstance(lpath, list))  # else used as given
        if recursive or (expands and any(has_magic(str(p)) for p in sources)):
            where = self.unstrip_protocol(self._strip_protocol(str(sources[0])))
            raise NotImplementedError(
                f"{where}: b2store cannot copy a tree of the Caterva2 store with fs.get (its "
                "listings hold no chunk keys, so the copy would lack the data); read the arrays "
                "with zarr or xarray and write them out (xr.open_zarr(url).to_zarr(path)), or "
                "download the files with caterva2.Client(url).download(path)"
            )
        return await super()._get(rpath, lpath, recursive=False, **kwargs)

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget the dataset descriptions held in memory (the disk cache keeps its checks)."""
        if path is None:
            self._datasets.clear()
        else:
            self._datasets.pop(self._strip_protocol(path), None)
        super().invalidate_cache(path)


#: Filesystems with a chunk cache, for :func:`_after_fork`.
_WITH_CACHE: weakref.WeakValueDictionary[int, Caterva2FileSystem] = weakref.WeakValueDictionary()


def _after_fork() -> None:
    """Give the filesystems a forked child inherits chunk caches of their own (and the
    module locks afresh: :data:`_UNPICKLED_LOCK`, the client's and the cache's).

    A cache's lock may have been held at the fork by a thread that does not exist in the child
    (the first write to a cache scans its whole folder holding it): the child's first read of
    a new chunk of an array opened before the fork waited for ever.
    """
    global _UNPICKLED_LOCK
    _UNPICKLED_LOCK = threading.Lock()  # the same
    _client_module._reset_after_fork()  # (the shared TLS contexts' lock)
    _cache_module._reset_after_fork()  # (the locks of the caches' shared running totals)
    # The parent's HTTP sessions are not the child's: their sockets and the registrations of
    # its event loop's epoll set are shared with the parent, and closing them here (the child's
    # first request replaces the session of another loop; collecting it closes it too)
    # unregistered the parent's sockets: its next request waited for its timeout. Marked
    # closed, they are dropped without touching them.
    for session in list(_client_module._LIVE_SESSIONS):
        with contextlib.suppress(Exception):
            connector = session.connector
            if connector is not None:
                connector._closed = True
    _client_module._LIVE_SESSIONS.clear()
    for fs in list(_WITH_CACHE.values()):
        cache = fs.cache
        if cache is not None:
            with contextlib.suppress(Exception):
                fs.cache = ChunkCache(root=cache.root, size_limit=cache.size_limit)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


#: Filesystems rebuilt from pickles in this process, by (class, arguments, opened versions,
#: thread): dask's processes scheduler unpickles the store with every task, and copies of one open
#: in one thread share one instance (HTTP session, read-ahead, dataset descriptions). Bounded;
#: most recent last.
_UNPICKLED: collections.OrderedDict[tuple[Any, ...], Caterva2FileSystem] = collections.OrderedDict()
_UNPICKLED_MAX = 8
_UNPICKLED_LOCK = threading.Lock()


def _unpickle(
    cls: type[Caterva2FileSystem],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    versions: dict[str, str | None],
) -> Caterva2FileSystem:
    """Rebuild a pickled filesystem that expects the dataset versions it was opened at."""
    # per thread as well: an instance's HTTP session belongs to one event loop at a time, and
    # threads that drive their own loops (asyncio.run) must not share it
    versions_key = tuple(sorted(versions.items(), key=lambda kv: kv[0]))
    key = (cls, tokenize(args, kwargs), versions_key, threading.get_ident())
    with _UNPICKLED_LOCK:
        fs = _UNPICKLED.get(key)
        if fs is not None:
            _UNPICKLED.move_to_end(key)
            return fs
    fs = cls(*args, **kwargs)
    fs._opened_versions.update(versions)
    with _UNPICKLED_LOCK:
        fs = _UNPICKLED.setdefault(key, fs)
        while len(_UNPICKLED) > _UNPICKLED_MAX:
            _UNPICKLED.popitem(last=False)
    return fs


def _storage_options() -> list[str]:
    """The storage options of the Caterva2 filesystems: their constructor's keywords, less
    ``url_credentials`` (fsspec sets it from a URL holding credentials)."""
    import inspect

    params = inspect.signature(Caterva2FileSystem.__init__).parameters
    return [p for p in params if p not in ("self", "kwargs", "url_credentials")]


#: what a 500 answer to the info or list of an HDF5 file means (see docs/caterva2.md)
_H5_LIST_500 = (
    "a dataset anywhere in the HDF5 file whose type h5py cannot read (an HDF5 time type, "
    "PyTables' Time32/Time64 columns; a quad-precision float) makes caterva2 2026.9 fail on "
    "the whole file; its other datasets still open by their own URLs (.../file.h5/<dataset>)"
)
#: what a 500 answer to the fetch of an HDF5 region means (see docs/caterva2.md)
_H5_500 = (
    "(the server failed to read this region of the HDF5 dataset with h5py; its log says why. "
    "Known causes: an HDF5 filter the server cannot apply (a plugin it lacks, such as LZO or "
    "szip, or data its plugin rejects), and a caterva2 2026.9 bug with 0-d string datasets "
    "holding an empty string, such as a netCDF grid-mapping variable 'crs'. The file's other "
    "datasets still read: leave this one out (xarray: drop_variables=[...]))"
)


def _nested(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is structured with a structured field."""
    return any(field[0].names for field in (dtype.fields or {}).values())


def _proxy_source(path: str, info: Any) -> str | None:
    """The server path, without suffix, of the HDF5 file an unfolded proxy at ``path`` reads.

    Caterva2 unfolds ``d/f.h5`` into ``d/f/<dataset path>.b2nd`` (vlmeta ``_ftype == "hdf5"``,
    ``_dsetname``) and finds the file again by going up as many folders as the dataset path has
    below the file's root; ``None`` for anything else.
    """
    if not isinstance(info, dict) or "shape" not in info:
        return None
    vlmeta = (info.get("schunk") or {}).get("vlmeta") or {}
    if not isinstance(vlmeta, dict) or vlmeta.get("_ftype") != "hdf5":
        return None
    dsetname = str(vlmeta.get("_dsetname") or "").lstrip("/")
    folder = posixpath.dirname(path)
    for _ in range(dsetname.count("/")):
        folder = posixpath.dirname(folder)
    return folder if "/" in folder else None  # a root itself cannot be the file


def _off_grid(url: str, ds: Dataset, coords: tuple[int, ...]) -> str:
    """The message for chunk key ``url`` of ``ds``, whose ``coords`` are off the chunk grid."""
    grid = ds.grid
    if any(n == 0 for n in grid):
        keys = f"it has no chunks (shape {ds.shape})"
    elif not grid:
        keys = "its only chunk key is c (Zarr v3) or 0 (v2)"
    else:
        last = tuple(n - 1 for n in grid)
        v3 = "c/" + "/".join("0" * len(grid)), "c/" + "/".join(map(str, last))
        v2 = ".".join("0" * len(grid)), ".".join(map(str, last))
        keys = f"its chunk keys run from {v3[0]} to {v3[1]} (Zarr v3) or {v2[0]} to {v2[1]} (v2)"
    return (
        f"{url}: chunk {coords} is outside the chunk grid {grid} of Caterva2 dataset {ds.path}; "
        f"{keys}"
    )


async def _listed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A listing known already, in the form of the ``_ls`` calls it is gathered with."""
    return entries


def _succeeded(task: asyncio.Task[bytes]) -> bool:
    """Whether ``task`` finished with a result."""
    return task.done() and not task.cancelled() and task.exception() is None


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    """Mark a prefetch failure as seen (the chunk is fetched again when it is really needed)."""
    if not task.cancelled():
        task.exception()


class Caterva2SFileSystem(Caterva2FileSystem):
    """The :class:`Caterva2FileSystem` over HTTPS (protocol ``caterva2s``)."""

    protocol: Any = "caterva2s"
    _scheme = "https"
