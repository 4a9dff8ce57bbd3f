"""Where the files named by external links and virtual-dataset sources are.

Contract: pure path arithmetic on URLs and paths of the target filesystem, no I/O.
:func:`resolve_external` gives the path of a linked file relative to the linking file's folder
(a URL keeps its ``scheme://host``); :func:`external_candidates` lists, in order, every place
HDF5 would look for it. Opening a candidate is the caller's (an :data:`OpenExternal` callable,
which the filesystem supplies to :func:`b2store.hdf5.index.build_index`).
"""

from __future__ import annotations

import posixpath
import urllib.parse
from collections.abc import Callable

import h5py

__all__ = ["OpenExternal", "env_prefix_candidates", "external_candidates", "resolve_external"]

#: ``(url of the linking file, file name in the link) -> (open h5py.File, its url)``
OpenExternal = Callable[[str, str], tuple[h5py.File, str]]


def resolve_external(base_url: str, filename: str) -> str:
    """Target path of an external link's file, relative to the linking file's folder.

    A URL keeps its ``scheme://host`` (normalising the whole string made ``http://h/a.h5``
    link to ``http:/h/...``, which no filesystem finds); an http(s) URL's query and fragment
    belong to the linking file and are dropped, and the file name is percent-encoded into
    its path (the base URL is taken as encoded already).
    """
    if filename.startswith("/") or "://" in filename:
        return filename
    if "://" not in base_url:
        return posixpath.normpath(posixpath.join(posixpath.dirname(base_url), filename))
    scheme, rest = base_url.split("://", 1)
    host, _, path = rest.partition("/")
    if scheme.lower() in ("http", "https"):
        path = path.split("#", 1)[0].split("?", 1)[0]
        # a file name, not a URL: "%41" named "pcA.h5" on the server (another file's data),
        # "#" and "?" cut the name short
        filename = urllib.parse.quote(filename, safe="/")
    target = posixpath.normpath(posixpath.join(posixpath.dirname("/" + path), filename))
    return f"{scheme}://{host}{target}"


def external_candidates(base_url: str, filename: str) -> list[str]:
    """Where HDF5 looks for an external link's (or a VDS source's) file, in order.

    A relative name is taken relative to the linking file's folder. An absolute one that does
    not exist is then looked for by its base name in that folder: HDF5 does so (NeXus masters
    written with the beamline's absolute paths still read after copying the files together).
    The current directory and ``HDF5_EXT_PREFIX`` are not searched.
    """
    first = resolve_external(base_url, filename)
    if "://" in filename or not filename.startswith("/"):
        return [first]
    base_name = filename.rstrip("/").rsplit("/", 1)[-1]
    beside = resolve_external(base_url, base_name) if base_name else first
    return [first] if beside == first else [first, beside]


def env_prefix_candidates(base_url: str, filename: str, prefixes: str | None) -> list[str]:
    """Where HDF5 looks for a linked (``HDF5_EXT_PREFIX``) or source (``HDF5_VDS_PREFIX``)
    file before the linking file's folder, given that variable's value ``prefixes``: each of
    its ``:``-separated folders (``${ORIGIN}`` is the linking file's folder) joined with the
    name, or its base name when the name is absolute (HDF5 tries an absolute name as is first).

    Local files only: a remote file's links are not looked up on this machine, so none.
    b2store does not search these places; the caller refuses what HDF5 would find there.
    """
    if not prefixes or "://" in base_url or "://" in filename:
        return []
    name = filename.rstrip("/").rsplit("/", 1)[-1] if filename.startswith("/") else filename
    origin = posixpath.dirname(base_url) or "."
    return [
        posixpath.normpath(posixpath.join(p.replace("${ORIGIN}", origin), name))
        for p in prefixes.split(":")
        if p
    ]
