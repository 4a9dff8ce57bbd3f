"""Checks of what ``HDF5FileSystem`` (protocol ``b2h5``) is given, before it opens the file.

Contract
--------
* :func:`_check_options` refuses keyword options b2h5 does not know, and options under a
  protocol name fsspec would not route to the target (they would be ignored): ``TypeError``
  saying where they go. :func:`_check_view_options` refuses values of b2h5's own options
  (``zarr_format``, ``unsupported``, ``follow_external_links``, ``index_cache``,
  ``check_version``) it does not take; every such error names the file the options were
  given for.
* Local target paths: :func:`_rfc8089_path` reads a ``file:`` URL as RFC 8089 does when
  fsspec's literal reading names no file; :func:`_check_regular_file` refuses folders and
  named pipes with a clear error instead of a misleading one or a hang.
* Pure checks: nothing is opened or cached here.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from b2store._readonly import FSSPEC_OPTIONS


def _rfc8089_path(path: str) -> str:
    """The local file a ``file:`` URL names, read as RFC 8089 does, when fsspec's literal
    reading of it (``path``) does not exist.

    ``Path.as_uri()`` percent-encodes spaces and non-ASCII names and ``file://localhost/``
    names the local host; fsspec kept ``%20`` and made ``localhost/...`` a path relative to the
    working directory ("HDF5 file not found"). A file whose name really holds ``%20`` is
    still found first.
    """
    if os.path.exists(path):
        return path
    cand = path
    host = os.path.join(os.getcwd(), "localhost") + "/"
    if os.sep == "/" and cand.startswith(host):
        cand = "/" + cand[len(host) :]
    if "%" in cand and "%2f" not in cand.lower():  # no "/" inside a name: no such file
        cand = urllib.parse.unquote(cand)
    return cand if cand != path and os.path.exists(cand) else path


def _for_file(fo: Any) -> str:
    """How an option error names the file the options were given for."""
    if isinstance(fo, str | os.PathLike) and str(fo):
        return f"b2h5 (opening {str(fo)!r})"
    return "b2h5"


def _check_view_options(
    fo: Any,
    *,
    zarr_format: Any,
    unsupported: Any,
    follow_external_links: Any,
    index_cache: Any,
    check_version: Any,
) -> None:
    """Refuse values of b2h5's own options it does not take, naming the file they were given
    for (an ``open_mfdataset`` over many files otherwise does not say which call failed)."""
    import numpy as np

    who = _for_file(fo)
    if not isinstance(follow_external_links, bool | np.bool_):
        raise TypeError(
            f"{who}: Expected follow_external_links True or False. Got "
            f"{follow_external_links!r} instead."
        )
    if not isinstance(check_version, bool | np.bool_):
        raise TypeError(
            f"{who}: Expected check_version True or False. Got {check_version!r} instead."
        )
    if zarr_format not in (2, 3):
        raise ValueError(f"{who}: Expected zarr_format 2 or 3. Got {zarr_format!r} instead.")
    if unsupported not in ("raise", "warn", "skip"):
        raise ValueError(
            f"{who}: Expected unsupported 'raise', 'warn' or 'skip'. Got {unsupported!r} instead."
        )
    _check_index_cache(index_cache, who)


def _check_index_cache(value: Any, who: str = "b2h5") -> None:
    """Reject ``index_cache`` values that are not None, ``"auto"`` or a folder.

    ``""`` used to mean the current folder (sidecar files written wherever the process runs)
    and ``True`` failed later with a bare TypeError.
    """
    if value is None:
        return
    if not isinstance(value, str | os.PathLike):
        raise TypeError(
            f"{who}: Expected index_cache None, 'auto' or a folder path. Got {value!r} instead."
        )
    if isinstance(value, str) and not value.strip():
        raise ValueError(
            f"{who}: Expected index_cache None (memory only), 'auto' or a folder path. Got an "
            "empty string instead (use '.' for the current folder)."
        )
    if value == "auto":
        return
    # an existing file (index_cache="index.npz") cached nothing, silently: sidecar writes are
    # best effort (a folder that cannot be made or written, such as a read-only shared one,
    # is skipped)
    folder = Path(value).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{who}: Expected index_cache None, 'auto' or a folder path. Got {str(value)!r}, which "
            "is a file: give a folder for the sidecar index files."
        )


def _implementation(protocol: str) -> str | None:
    """The dotted class name of an fsspec protocol's filesystem (``None``: unknown)."""
    from fsspec.registry import known_implementations, registry

    if protocol in known_implementations:  # as written there: s3 and s3a both "s3fs.S3..."
        return str(known_implementations[protocol]["class"])
    cls = registry.get(protocol)
    return None if cls is None else f"{cls.__module__}.{cls.__qualname__}"


def _target_protocols(
    fo: Any, target_protocol: str | None, target_options: dict[str, Any] | None
) -> list[str]:
    """The protocols of the filesystems under b2h5, as fsspec routes options to them: the
    schemes of a chained URL as written (``https``, ``s3a``; a plain path is ``file``)."""
    from fsspec.core import split_protocol

    if target_protocol is None:
        return [split_protocol(bit)[0] or "file" for bit in str(fo).split("::")]
    out = [target_protocol]
    opts = target_options
    while isinstance(opts, dict) and isinstance(opts.get("target_protocol"), str):
        out.append(opts["target_protocol"])  # simplecache::https://...
        opts = opts.get("target_options")
    return out


def _check_options(
    kwargs: dict[str, Any],
    fo: Any,
    target_protocol: str | None = None,
    target_options: dict[str, Any] | None = None,
    *,
    accepted: Sequence[str] = (),
) -> None:
    """Refuse options b2h5 does not know. fsspec hands a chained URL's options that are not
    under a protocol name to its first filesystem, b2h5: the target's options given that way
    (``storage_options={"anon": True}`` for ``b2h5::s3://...``) or a misspelt option
    (``zarr_fromat``) were ignored silently (the v3 view, no credentials). So were options
    under another name of the target's protocol (``"http"`` for a ``b2h5::https://`` URL, or
    ``"s3"`` for ``s3a://``): fsspec routes only those under the URL's own scheme.
    ``accepted``: b2h5's own keywords, named in the message (read from its constructor)."""
    from fsspec.registry import known_implementations, registry

    url = str(fo)
    chain = _target_protocols(fo, target_protocol, target_options)
    scheme = chain[0]
    if "://" not in url and scheme != "file":
        url = f"{scheme}://{url}"
    by_impl = {_implementation(p): p for p in reversed(chain)}
    by_impl.pop(None, None)
    # options under the name of a protocol that is not in this URL's chain (one
    # storage_options for local and remote files) are fsspec's to route, not b2h5's
    protocols = set(known_implementations) | set(registry)
    for k in sorted(kwargs):
        if k in FSSPEC_OPTIONS or k not in protocols or not isinstance(kwargs[k], dict):
            continue
        routed = by_impl.get(_implementation(k))
        if routed is None:
            continue
        if routed != k:
            raise TypeError(
                f"b2h5 got options under {k!r} for {url!r}, but fsspec gives the filesystem "
                f"holding the file only the options under its URL's own scheme, {routed!r} "
                f"(the same filesystem as {k!r}): they would be ignored. Give them as "
                f"storage_options={{{routed!r}: {{...}}}}."
            )
        raise TypeError(
            f"b2h5 got options under {k!r} for {url!r}, which fsspec did not route to the "
            "filesystem holding the file (no chained URL): they would be ignored. Give them "
            f"as target_options (fsspec.filesystem('b2h5', fo=..., target_options={{...}})) "
            f"or use a chained URL ('b2h5::{routed}://...' with "
            f"storage_options={{{routed!r}: {{...}}}})."
        )
    unknown = sorted(
        k
        for k in kwargs
        if k not in FSSPEC_OPTIONS and not (k in protocols and isinstance(kwargs[k], dict))
    )
    if not unknown:
        return
    raise TypeError(
        f"b2h5 got unknown option(s) {', '.join(map(repr, unknown))} for {url!r}. b2h5 takes "
        f"{', '.join(accepted)} (and fsspec's own: {', '.join(sorted(FSSPEC_OPTIONS))}); "
        "options of the filesystem holding the file go under its protocol "
        f"name (storage_options={{{scheme!r}: {{...}}}} with a 'b2h5::{scheme}://...' URL) or "
        f"in target_options (fsspec.filesystem('b2h5', fo=..., target_options={{...}}))."
    )


def _check_regular_file(url: str) -> None:
    """Refuse a local path that is no file: a folder said "not a readable HDF5 file ...;
    check that it is complete (not truncated)", and a named pipe (FIFO) hung the open
    forever, waiting for a writer."""
    try:
        mode = os.stat(url).st_mode
    except OSError:
        return  # the open says what is wrong
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(
            f"{url} is a folder, not an HDF5 file: name the file inside it "
            "('b2h5::<folder>/<file>.h5'); a Zarr store folder opens without b2h5 "
            "(xr.open_zarr('<folder>'))"
        )
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise OSError(
            f"{url} is {kind}, not an HDF5 file: b2h5 reads chunks at their offsets, "
            "so it needs a file it can seek in (write the stream to a file first)"
        )
