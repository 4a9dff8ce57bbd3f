"""Following HDF5 soft and external links one at a time, through the caller's file opener.

Contract: :func:`follow_path` resolves a path in an open HDF5 file link by link: hard links by
h5py, soft links by restarting from the file's root, external links by opening the linked
file through the caller's :data:`~b2store.hdf5._external.OpenExternal` (never by HDF5's own
external-link traversal, which opens files by its own rules and hands back objects whose chunk
offsets belong to another file than the one being indexed). It returns the object and the URL
of the file that holds it, or raises ``KeyError`` (no such object) / ``ValueError`` (a
user-defined link, more than :data:`MAX_LINK_HOPS` links, a path into a mounted file, or
:func:`check_env_prefix`'s refusal). Used for virtual-dataset sources and for links the walk
of :mod:`b2store.hdf5.index` meets.
"""

from __future__ import annotations

import os
from typing import Any

import h5py

from b2store.hdf5._external import OpenExternal, env_prefix_candidates, external_candidates

__all__ = ["MAX_LINK_HOPS", "ExternalLinkMet", "check_env_prefix", "follow_path"]

#: External and soft links followed on one path, as HDF5's default link limit
MAX_LINK_HOPS = 16


class ExternalLinkMet(ValueError):
    """:func:`follow_path` met an external link and was given no opener to follow it."""


def check_env_prefix(var: str, url: str, filename: str) -> None:
    """Raise ``ValueError`` when environment variable ``var`` makes HDF5 (so h5py) read
    another file than b2store does for ``filename``, linked from local file ``url``."""
    for path in env_prefix_candidates(url, filename, os.environ.get(var)):
        if filename.startswith("/") and os.path.exists(filename):
            return  # HDF5 opens an absolute name that exists as is, as b2store does
        if os.path.isfile(path):
            mine = external_candidates(url, filename)
            if not any(os.path.exists(m) and os.path.samefile(m, path) for m in mine):
                raise ValueError(
                    f"{var} is set, so HDF5 reads {filename} from {path}; b2store does not "
                    f"search {var}: unset it, or copy that file beside {url}"
                )
            return


def follow_path(
    root: h5py.Group, url: str, path: str, open_external: OpenExternal | None, hops: int
) -> tuple[Any, str]:
    """(object, url of its file) at ``path`` in the file ``url`` whose root group is ``root``,
    following soft and external links one at a time (h5py would open an external link's file
    itself, by its own rules and not through ``open_external``, and the object's chunk
    offsets would then be taken for offsets in file ``url``: another file's bytes)."""
    group: Any = root
    parts = [p for p in path.split("/") if p and p != "."]
    for i, part in enumerate(parts):
        if not isinstance(group, h5py.Group):
            raise KeyError(f"{'/'.join(parts[:i])} of {url} is not a group")
        try:
            kind = group.id.links.get_info(part.encode("utf-8")).type
        except (KeyError, RuntimeError) as exc:  # h5py: RuntimeError "name doesn't exist"
            raise KeyError(f"no object {part!r} in {group.name} of {url}") from exc
        if kind == h5py.h5l.TYPE_HARD:
            group = group[part]
            continue
        if hops >= MAX_LINK_HOPS:
            raise ValueError(f"more than {MAX_LINK_HOPS} links on the way (a link cycle?)")
        rest = "/".join(parts[i + 1 :])
        link = group.get(part, getlink=True)
        if isinstance(link, h5py.SoftLink):
            base = link.path if link.path.startswith("/") else f"{group.name}/{link.path}"
            return follow_path(root, url, f"{base}/{rest}", open_external, hops + 1)
        if not isinstance(link, h5py.ExternalLink):
            raise ValueError(f"{part!r} in {group.name} of {url} is a user-defined link")
        if open_external is None:
            raise ExternalLinkMet(f"no opener for {link.filename}, linked from {url}")
        check_env_prefix("HDF5_EXT_PREFIX", url, link.filename)
        ext, ext_url = open_external(url, link.filename)
        return follow_path(ext["/"], ext_url, f"{link.path}/{rest}", open_external, hops + 1)
    if group.id.fileno != root.id.fileno:  # a mounted file: its offsets are not in ``url``
        raise ValueError(f"{path} lies in another file than {url}")
    return group, url
