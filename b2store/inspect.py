"""What is inside an HDF5 file (or a Zarr-like URL): the data behind ``b2store info``.

Contract: :func:`inspect_path` walks an HDF5 file once with h5py (never through zarr, so h5py's
global lock never meets zarr's event loop) and returns one :class:`NodeInfo` per path, as the
``b2h5`` view presents them: a dataset reached through a second hard link or a soft link is
listed at each path; a group reached again is listed with the path where its members are; a link
back to an enclosing group is listed, not followed; an external link is listed with what it
reaches (b2h5 follows it only when asked); a link that does not resolve has kind ``"link"``.
Each dataset comes with the shape, dtype, chunks, Blosc2 block shape (read from the first
allocated chunk's frame, validated before blosc2 sees it), the filter pipeline by name, the
stored size and ratio, and whether b2store reads the dataset directly or why not (the verdict
of :func:`b2store.hdf5.filters.plan_codecs`). A URL with a protocol other than ``file``
(``caterva2://``, ``b2h5::…``) is opened as a Zarr group through fsspec instead, when the
protocol is available.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from b2store.codecs.hdf5_pipeline import FILTER_NAMES
from b2store.errors import B2StoreError, without_api_hint

__all__ = [
    "FILTER_NAMES",
    "InspectError",
    "NodeInfo",
    "inspect_path",
    "render_text",
    "to_json",
]


#: protocols whose filesystems present every dataset, HDF5 files too, as a Zarr hierarchy: a URL
#: of theirs that ends in ``.h5`` is such a hierarchy, not a file for the ``b2h5`` view
_ZARR_PROTOCOLS = ("caterva2", "caterva2s")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4", ".nxs", ".cxi")


class InspectError(B2StoreError, ValueError):
    """The input is not something ``b2store info`` can read (not HDF5, not a Blosc2 frame)."""


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """One group or dataset as ``b2store info`` reports it.

    Attributes
    ----------
    path : str
        Path inside the file (``"/"`` for the root).
    kind : str
        ``"group"``, ``"dataset"``, or ``"link"`` for a soft or external link that does not
        resolve, or that a ``b2h5`` view does not follow (``reason`` says where it points). A
        group reached again by another link has a ``reason`` naming the path where its members
        are listed.
    shape, dtype, chunks, blocks : optional
        Dataset geometry; ``chunks`` is ``None`` for non-chunked layouts, ``blocks`` only for Blosc2
        b2nd chunks. An HDF5 type numpy cannot represent (a 128-bit float, a time type) shows as
        ``float128 (HDF5 type)``, ``time32 (HDF5 type)``: such a dataset is not direct.
    layout : str
        ``chunked``, ``contiguous``, ``compact``, ``virtual``, ``external`` or ``""`` for groups.
    filters : list of str
        Filter pipeline by name, in HDF5 (encode) order.
    nbytes, stored : int
        Uncompressed and stored bytes (``stored`` is ``None`` when the store cannot tell: a
        Caterva2 server lists no chunk keys).
    ratio : float or None
        ``nbytes / stored`` (``None`` when nothing is stored or the size is unknown).
    direct : bool
        Whether b2store reads the dataset from raw bytes without HDF5.
    reason : str
        Why not, when ``direct`` is false.
    """

    path: str
    kind: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunks: tuple[int, ...] | None = None
    blocks: tuple[int, ...] | None = None
    blosc2: str = ""
    layout: str = ""
    filters: list[str] = field(default_factory=list)
    nbytes: int = 0
    stored: int | None = 0
    ratio: float | None = None
    direct: bool = True
    reason: str = ""


def _frame_info(raw: bytes) -> tuple[tuple[int, ...] | None, str]:
    """(b2nd block shape or None, ``codec-clevel+filters``) of a Blosc2 frame, read by b2store's
    own frame parser (:mod:`b2store.codecs._blosc2frame`): no C parser sees the file's bytes."""
    import blosc2

    from b2store.codecs import _blosc2frame as bf

    if not bf.is_frame(raw):
        raise InspectError(
            f"Expected a Blosc2 frame (magic b'b2frame'). Got {len(raw)} bytes starting "
            f"{bytes(raw[:10])!r} instead."
        )
    try:
        info = bf.parse_frame(raw, what="Blosc2 frame")
    except ValueError as exc:
        raise InspectError(f"Expected a sound Blosc2 frame. Got {exc} instead.") from exc
    codec = info.codec
    if codec == bf.UDCODEC_FORMAT and info.nchunks:  # a plugin: its id is in the chunk header
        chunk, _special = bf.frame_chunk(raw, info, 0, what="Blosc2 frame")
        if chunk is not None:
            codec = bf.chunk_header(chunk, what="Blosc2 frame").udcodec
    desc = f"{_enum_name(blosc2.Codec, codec)}-{info.clevel}" + "".join(
        f"+{_enum_name(blosc2.Filter, f)}" for f in info.filters if f != 0
    )
    return (info.b2nd.blocks if info.b2nd is not None else None), desc


def _enum_name(enum: Any, value: int) -> str:
    """``zstd`` for ``blosc2.Codec`` 5; ``codec<n>``/``filter<n>`` for ids blosc2 does not name."""
    try:
        return str(enum(value).name).lower()
    except ValueError:
        return f"{enum.__name__.lower()}{value}"


def _plan_verdict(ds: Any) -> tuple[bool, str]:
    """Whether b2store reads ``ds`` directly, by the HDF5 filter planner
    (:func:`b2store.hdf5.filters.plan_codecs`), and if not, its first line of why."""
    from b2store.hdf5.filters import plan_codecs, read_pipeline

    pipeline = read_pipeline(ds.id.get_create_plist())
    masks: set[int] = set()
    if ds.chunks is not None and pipeline:
        ds.id.chunk_iter(lambda info: masks.add(int(info.filter_mask)))
    chunks = tuple(ds.chunks) if ds.chunks else tuple(ds.shape)
    try:
        plan_codecs(pipeline, ds.dtype, chunks, masks=masks, where=ds.name)
    except NotImplementedError as exc:
        # the line names the dataset already; the advice to pass unsupported= is for Python
        # callers (``info b2h5::FILE`` drops it too)
        why = str(exc).splitlines()[0].removeprefix(f"{ds.name}: ")
        return False, without_api_hint(why)
    except Exception as exc:  # the planner's own validation: report, do not crash `info`
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return True, ""


def _dataset_info(ds: Any) -> NodeInfo:
    import h5py

    from b2store.convert._hdf5 import numpy_dtype

    path = ds.name
    dcpl = ds.id.get_create_plist()
    filters: list[tuple[int, tuple[int, ...]]] = []
    for i in range(dcpl.get_nfilters()):
        fid, _flags, cd, _name = dcpl.get_filter(i)
        filters.append((int(fid), tuple(int(c) for c in cd)))
    names = [FILTER_NAMES.get(fid, f"filter-{fid}") for fid, _ in filters]
    shape = None if ds.shape is None else tuple(int(s) for s in ds.shape)
    dtype = numpy_dtype(ds)
    tid = ds.id.get_type()
    itemsize = tid.get_size() if isinstance(dtype, str) else dtype.itemsize
    nbytes = 0 if shape is None else int(np.prod(shape, dtype=np.int64)) * itemsize
    stored = int(ds.id.get_storage_size())
    # variable-length items: 8-byte pointers in memory, 16-byte heap ids on disk, the data in
    # the heap: no ratio (it showed 0.50 for every vlen string)
    vlen = not isinstance(dtype, str) and dtype.hasobject
    ratio = round(nbytes / stored, 3) if stored and not vlen else None
    layout_id = dcpl.get_layout()
    layout = {
        h5py.h5d.CHUNKED: "chunked",
        h5py.h5d.CONTIGUOUS: "contiguous",
        h5py.h5d.COMPACT: "compact",
    }.get(layout_id, "virtual")
    if ds.is_virtual:
        layout = "virtual"
    elif dcpl.get_external_count() > 0:
        layout = "external"

    direct, reason = True, ""
    if isinstance(dtype, str):  # a 128-bit float, an HDF5 time type: listed, not read
        direct, reason = False, dtype
    elif shape is None:
        direct, reason = False, "NULL dataspace (no data)"
    elif layout == "virtual":
        direct, reason = False, "virtual dataset (H5D_VIRTUAL): open the source files instead"
    elif layout == "external":
        direct, reason = False, "raw data in an external file"
    elif (
        h5py.check_string_dtype(dtype) is not None and h5py.check_string_dtype(dtype).length is None
    ):
        direct, reason = True, "variable-length strings are read through h5py at open (inlined)"
    elif h5py.check_ref_dtype(dtype) is not None:
        direct, reason = False, "HDF5 references have no Zarr equivalent"
    elif h5py.check_vlen_dtype(dtype) is not None or dtype.hasobject:
        direct, reason = False, "variable-length data is not chunk-addressable"
    else:
        direct, reason = _plan_verdict(ds)
    if direct and _is_netcdf_dimension(ds):
        direct, reason = False, _NETCDF_DIMENSION

    blocks, b2desc = None, ""
    ids = [fid for fid, _ in filters]
    if layout == "chunked" and 32026 in ids:
        blocks, b2desc = _first_chunk_info(ds, ids.index(32026))
    return NodeInfo(
        path=path,
        kind="dataset",
        shape=shape,
        dtype=_hdf5_type_name(tid) if isinstance(dtype, str) else str(dtype),
        chunks=tuple(int(c) for c in ds.chunks) if ds.chunks else None,
        blocks=blocks,
        blosc2=b2desc,
        layout=layout,
        filters=names,
        nbytes=nbytes,
        stored=stored,
        ratio=ratio,
        direct=direct,
        reason=reason,
    )


def _hdf5_type_name(tid: Any) -> str:
    """A dtype-like name of an HDF5 type h5py has no dtype for: ``float128 (HDF5 type)``."""
    import h5py

    kinds = {
        h5py.h5t.INTEGER: "int",
        h5py.h5t.FLOAT: "float",
        h5py.h5t.TIME: "time",
        h5py.h5t.BITFIELD: "bitfield",
        h5py.h5t.OPAQUE: "opaque",
        h5py.h5t.COMPOUND: "compound",
        h5py.h5t.ENUM: "enum",
        h5py.h5t.ARRAY: "array",
        h5py.h5t.VLEN: "vlen",
    }
    return f"{kinds.get(tid.get_class(), 'type')}{8 * tid.get_size()} (HDF5 type)"


def _is_netcdf_dimension(ds: Any) -> bool:
    """A netCDF dimension that is not a netCDF variable (the ``b2h5`` view hides it)."""
    try:
        from b2store.hdf5.metadata import is_pure_dimension
    except ImportError:
        return False
    return bool(is_pure_dimension(ds))


_NETCDF_DIMENSION = (
    "a netCDF dimension, not a variable: b2h5 shows no array for it (its length sizes the "
    "dimension)"
)
_VDS_MAPPED = "virtual dataset mapped onto its sources' chunks"


def _virtual_verdicts(path: str, nodes: list[NodeInfo]) -> list[NodeInfo]:
    """Replace the verdict on each virtual dataset with the ``b2h5`` index's own: it maps a
    virtual dataset whose sources line up with their chunks, and says why not otherwise."""
    from dataclasses import replace

    virtual = [i for i, n in enumerate(nodes) if n.layout == "virtual" and n.shape is not None]
    if not virtual:
        return nodes
    try:
        from b2store.hdf5.filesystem import HDF5FileSystem

        index = HDF5FileSystem(fo=path, zarr_format=2, unsupported="skip").index
    except Exception:  # no b2h5 view (not installed, unreadable sources): keep the table's verdict
        return nodes
    out = list(nodes)
    for i in virtual:
        key = nodes[i].path.lstrip("/")
        if key in index.tables:
            out[i] = replace(nodes[i], direct=True, reason=_VDS_MAPPED)
            continue
        why = next((n for n in index.notes if f":/{key}: " in n), "")
        if why:
            why = why.split(f":/{key}: ", 1)[1].split(". ", 1)[0]
            out[i] = replace(nodes[i], reason=why)
    return out


def _first_chunk_info(ds: Any, position: int) -> tuple[tuple[int, ...] | None, str]:
    """Blocks and codec of the first allocated chunk (Blosc2 filter at ``position``)."""
    first: list[Any] = []

    def cb(info: Any) -> bool:
        first.append(info)
        return True  # h5py's chunk_iter stops at a callback's first value that is not None

    try:
        ds.id.chunk_iter(cb)
    except Exception:
        return None, ""
    if not first:
        return None, ""
    mask, raw = ds.id.read_direct_chunk(first[0].chunk_offset)
    if (mask >> position) & 1:  # the Blosc2 filter was skipped for this chunk
        return None, ""
    try:
        return _frame_info(raw)
    except (B2StoreError, RuntimeError, ValueError):
        return None, ""  # not a bare frame (e.g. fletcher32 after Blosc2): nothing to report


def inspect_hdf5(path: str | os.PathLike[str]) -> list[NodeInfo]:
    """Walk an HDF5 file and describe every group and dataset.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    B2StoreError
        If the file is not HDF5.
    """
    import h5py
    import hdf5plugin  # noqa: F401  (registers filters so dcpl names resolve)

    path = os.fspath(path)
    if not path:  # "" read as "no such file" with an empty name: ": no such file"
        raise InspectError("Expected an HDF5 file name or a URL, such as scan.h5. Got '' instead.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder: give an HDF5 file")
    if not h5py.is_hdf5(path):
        raise InspectError(f"{path} is not an HDF5 file (no HDF5 signature)")
    nodes: list[NodeInfo] = []
    from b2store.convert._hdf5 import open_input
    from b2store.hdf5.index import open_local_file

    with open_input(path, open_local_file) as f:  # also while an SWMR writer appends
        nodes.append(NodeInfo(path="/", kind="group"))
        _walk(f, nodes)
    return _virtual_verdicts(path, nodes)


def _object_key(obj: Any) -> tuple[Any, int]:
    """One key per HDF5 object (its file and address), whatever path reaches it."""
    return (obj.id.fileno, hash(obj.id))


def _walk(group: Any, nodes: list[NodeInfo]) -> None:
    """Append a node per member of ``group``, by every link, as the ``b2h5`` view presents them.

    h5py's ``visit`` lists each object once and follows no soft or external link: a dataset
    hard-linked at two paths, or reached through a soft or external link, was missing (the
    Diamond k11 master listed 262 of the 484 datasets ``info b2h5::`` lists) and its group
    looked empty. A dataset reached again is described once and listed at each path; a group
    reached again is listed with the path where its members are (walking it again could list
    a file's groups exponentially often); a link that does not resolve is listed as such.
    An explicit stack, not recursion: files nest groups deeper than Python's recursion limit.
    """
    import h5py

    root = _object_key(group)
    groups: dict[tuple[Any, int], str] = {root: "/"}
    datasets: dict[tuple[Any, int], NodeInfo] = {}
    # each level: (group, its path, its member names, its ancestors, the external link on the
    # way to it, if any: b2h5 presents what such a link reaches with follow_external_links=True)
    stack: list[tuple[Any, str, Any, frozenset[tuple[Any, int]], str]] = [
        (group, "", iter(group), frozenset({root}), "")
    ]
    while stack:
        parent, prefix, names, ancestors, via = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        shown = name.decode("utf-8", errors="replace") if isinstance(name, bytes) else name
        path = f"{prefix}/{shown}"
        link = parent.get(name, getlink=True)
        try:
            obj = parent[name]
        except (KeyError, OSError, ValueError) as exc:
            if isinstance(link, h5py.ExternalLink):
                what = f"external link to {link.filename}:{link.path} does not resolve"
            elif isinstance(link, h5py.SoftLink):
                what = f"soft link to {link.path} does not resolve"
            else:
                what = f"cannot be opened ({str(exc).splitlines()[0] if str(exc) else exc!r})"
            nodes.append(NodeInfo(path=path, kind="link", stored=None, direct=False, reason=what))
            continue
        key = _object_key(obj)
        if isinstance(link, h5py.ExternalLink) and not via:
            via = f"{path} is an external link to {link.filename}:{link.path}"
        elif isinstance(link, h5py.SoftLink) and not via and obj.id.fileno != parent.id.fileno:
            via = f"{path} is a soft link to {link.path} through an external link"
        if isinstance(obj, h5py.Group):
            first = groups.get(key)
            if key in ancestors:
                reason = f"link back to the enclosing group {first}: not followed"
                nodes.append(NodeInfo(path=path, kind="group", reason=reason))
            elif first is not None:
                reason = f"the group listed at {first}: its members are listed there"
                nodes.append(NodeInfo(path=path, kind="group", reason=reason))
            else:
                groups[key] = path
                nodes.append(NodeInfo(path=path, kind="group"))
                stack.append((obj, path, iter(obj), ancestors | {key}, via))
        elif isinstance(obj, h5py.Dataset):
            known = datasets.get(key)
            if known is None:
                known = datasets[key] = _dataset_info(obj)
            node = replace(known, path=path)
            if via:
                why = f"{via}: b2h5 presents it with follow_external_links=True"
                node = replace(node, reason=f"{why}; {node.reason}" if node.reason else why)
            nodes.append(node)


def inspect_zarr_url(url: str, storage_options: dict[str, Any] | None = None) -> list[NodeInfo]:
    """Describe a Zarr hierarchy behind an fsspec URL (``caterva2://…``, ``b2h5::…``, …)."""
    import zarr

    b2h5 = url.split("::", 1)[0].split("://", 1)[0] == "b2h5"
    if b2h5:  # list what b2h5 cannot present instead of failing on the first such dataset
        storage_options = {"unsupported": "skip", **(storage_options or {})}
    try:
        group = zarr.open_group(url, mode="r", storage_options=storage_options or None)
    except (ValueError, ImportError, LookupError) as exc:
        # zarr's "No group found in store ..." does not say that the server lacks the path
        why = _caterva2_not_a_group(url, storage_options) if _is_node_not_found(exc) else None
        if why is not None:
            raise why from None
        if not isinstance(exc, ValueError | ImportError):
            raise
        from b2store.hdf5._target_errors import _scrub

        raise InspectError(_scrub(f"cannot open {url} as a Zarr group: {exc}")) from exc
    nodes = [NodeInfo(path="/", kind="group")]
    for name, obj in sorted(group.members(max_depth=None)):
        if isinstance(obj, zarr.Group):
            nodes.append(NodeInfo(path="/" + name, kind="group"))
            continue
        shape = tuple(int(s) for s in obj.shape)
        nbytes = int(obj.nbytes)
        stored = _zarr_stored(obj, lists_chunks=b2h5)
        serializer = getattr(obj, "serializer", None)
        chain = (*obj.filters, *([serializer] if serializer is not None else []), *obj.compressors)
        codecs = [_codec_name(c) for c in chain if type(c).__name__ != "BytesCodec"]
        nodes.append(
            NodeInfo(
                path="/" + name,
                kind="dataset",
                shape=shape,
                dtype=str(obj.dtype),
                chunks=tuple(int(c) for c in obj.chunks),
                blocks=_b2nd_blocks(chain),
                layout="zarr",
                filters=codecs,
                nbytes=nbytes,
                stored=stored,
                ratio=round(nbytes / stored, 3) if stored else None,
            )
        )
    if b2h5:
        nodes += _skipped_by_b2h5(getattr(group.store, "fs", None), nodes)
    return nodes


def _is_node_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` is zarr's "no group found" or the Caterva2 filesystem's version of it
    for URLs holding credentials."""
    from zarr.errors import NodeNotFoundError

    from b2store.caterva2.filesystem import Caterva2URLNotFoundError

    return isinstance(exc, NodeNotFoundError | Caterva2URLNotFoundError)


#: names of a Caterva2 folder shown in the "not found" error of ``info``
_LISTED_NAMES = 10


def _caterva2_not_a_group(url: str, storage_options: dict[str, Any] | None) -> Exception | None:
    """Why a ``caterva2://`` URL did not open as a Zarr group, asked of the server, or ``None``
    (another protocol, or the server does not say).

    A missing dataset or directory is a :class:`FileNotFoundError` naming the URL (without
    credentials) and what the nearest existing folder holds; a missing root names the server's
    roots; a Zarr key (``.../c/0/0``) is an :class:`InspectError`.
    """
    protocol = url.split("://", 1)[0].lower() if "://" in url else ""
    if "::" in url or protocol not in _ZARR_PROTOCOLS:
        return None
    from fsspec.core import url_to_fs

    try:
        fs, path = url_to_fs(url, **(storage_options or {}))
    except (OSError, ValueError, TypeError):
        return None  # zarr opened it with these options: not expected
    try:
        info = fs.info(path)
    except FileNotFoundError as missing:
        return FileNotFoundError(_with_listing(fs, path, missing))
    except (OSError, ValueError, TypeError):
        return None  # the server fails, or refuses: zarr's error stands
    if info.get("type") == "file":
        where = fs.unstrip_protocol(path)
        return InspectError(
            f"{where} is a key of a Zarr store (a metadata document or a chunk), not a dataset "
            "or directory: give the URL of the dataset or directory it belongs to"
        )
    return None


def _with_listing(fs: Any, path: str, missing: FileNotFoundError) -> str:
    """The message of ``missing`` (the Caterva2 filesystem's, naming the URL and what to do),
    with what the nearest existing folder above ``path`` holds in place of its advice."""
    from b2store.caterva2.filesystem import _V2_KEYS

    message = str(missing).strip().splitlines()[0] if str(missing).strip() else ""
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    while parent:  # a missing root's message names the roots already
        try:
            listed = [n.rstrip("/").rsplit("/", 1)[-1] for n in fs.ls(parent, detail=False)]
        except FileNotFoundError:
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
            continue
        except (OSError, ValueError, TypeError):
            return message
        names = sorted(n for n in listed if n != "zarr.json" and n not in _V2_KEYS)
        shown = ", ".join(names[:_LISTED_NAMES])
        if len(names) > _LISTED_NAMES:
            shown += f", ... ({len(names)} in all)"
        if ".zarray" in listed:  # a dataset's view: its only member is its array
            holds = "is a dataset: open that URL instead"
        else:
            holds = f"holds {shown}" if names else "is empty"
        return (
            f"{fs.unstrip_protocol(path)}: no such dataset or directory was found on the "
            f"Caterva2 server; {fs.unstrip_protocol(parent)} {holds}"
        )
    return message


def _skipped_by_b2h5(fs: Any, nodes: list[NodeInfo]) -> list[NodeInfo]:
    """The datasets a ``b2h5`` view left out (its notes name them ``<file>:/<path>: why``), as
    not-direct entries, so ``info b2h5::…`` shows them as ``info FILE`` does."""
    from b2store.hdf5._target_errors import _scrub
    from b2store.hdf5.index import LINK_NOTES

    prefix = f"{_scrub(getattr(fs, 'url', ''))}:/"  # notes show no credentials
    listed = {n.path for n in nodes}
    out = []
    for note in getattr(fs, "notes", ()):
        if not note.startswith(prefix):
            continue
        path, _, why = note[len(prefix) :].partition(": ")
        why = without_api_hint(why)
        if why and "/" + path not in listed:
            listed.add("/" + path)
            # a link left out is a "link", as ``info FILE`` lists it (its target may be a group)
            kind = "link" if why.startswith(LINK_NOTES) else "dataset"
            out.append(NodeInfo(path="/" + path, kind=kind, stored=None, direct=False, reason=why))
    return out


def _zarr_stored(arr: Any, lists_chunks: bool = False) -> int | None:
    """Stored bytes of a zarr array, or ``None`` when its store lists no chunk keys although the
    array has chunks (a Caterva2 server: chunk sizes are unknown until fetched). A store that
    lists every chunk it has (``lists_chunks``: a ``b2h5`` view) stores 0 bytes for an array of
    unallocated chunks (it showed ``stored=?`` where ``info FILE`` says 0 B)."""
    if not hasattr(arr, "nbytes_stored"):
        return None
    if arr.nchunks and not lists_chunks and not arr.nchunks_initialized:
        return None  # metadata alone would give a ratio of hundreds
    return max(int(arr.nbytes_stored()) - _metadata_bytes(arr), 0)


def _metadata_bytes(arr: Any) -> int:
    """Bytes of the array's own metadata documents, which zarr's ``nbytes_stored`` counts with its
    chunks (a 300-byte dataset of the ``b2h5`` view showed as 854 bytes stored)."""
    from zarr.core.sync import sync

    store_path = getattr(arr, "store_path", None)
    if store_path is None:
        return 0
    names = ("zarr.json",) if arr.metadata.zarr_format == 3 else (".zarray", ".zattrs")
    prefix = f"{store_path.path}/" if store_path.path else ""
    total = 0
    for name in names:
        try:
            size = sync(store_path.store.getsize(prefix + name))
        except (FileNotFoundError, KeyError, NotImplementedError):
            continue
        total += int(size or 0)
    return total


def _b2nd_blocks(chain: tuple[Any, ...]) -> tuple[int, ...] | None:
    """The block shape a Blosc2 NDim codec of ``chain`` states (Caterva2 datasets state
    theirs; b2h5 leaves it to each chunk's header), else None."""
    for codec in chain:
        if _codec_name(codec) in ("b2store.b2nd", "b2store_b2nd"):
            if hasattr(codec, "get_config"):  # numcodecs (Zarr v2)
                config = codec.get_config()
            else:  # a Zarr v3 codec
                config = codec.to_dict().get("configuration") or {}
            blocks = config.get("blocks")
            if blocks:
                return tuple(int(b) for b in blocks)
    return None


def _codec_name(codec: Any) -> str:
    """``b2store.b2nd``-style name of a zarr codec (v3 name, or numcodecs id)."""
    try:
        d = codec.to_dict()
    except Exception:
        d = {}
    if isinstance(d, dict):
        name = d.get("name") or d.get("id")
        if name:
            return str(name)
    cid = getattr(codec, "codec_id", None)
    return str(cid) if cid else type(codec).__name__


def _url_names_hdf5(url: str) -> bool:
    """Whether the path of ``url`` ends like an HDF5 file name; its query and fragment do not
    count (a presigned ``https://…/scan.h5?X-Amz-Signature=…`` is an HDF5 file too)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path.lower().endswith(_HDF5_SUFFIXES)


def inspect_path(path_or_url: str) -> list[NodeInfo]:
    """Describe a local HDF5 file or, for URLs with a protocol, a Zarr hierarchy."""
    if "::" in path_or_url or ("://" in path_or_url and not path_or_url.startswith("file://")):
        protocol = path_or_url.split("://", 1)[0].lower()
        if (
            "::" not in path_or_url
            and protocol not in _ZARR_PROTOCOLS
            and _url_names_hdf5(path_or_url)
        ):
            path_or_url = "b2h5::" + path_or_url  # a remote HDF5 file: through the b2h5 view
        return inspect_zarr_url(path_or_url)
    if path_or_url.startswith("file://"):
        path_or_url = path_or_url[len("file://") :]
    return inspect_hdf5(path_or_url)


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render_text(nodes: list[NodeInfo]) -> str:
    """A tree, one line per node."""
    lines = []
    for n in nodes:
        depth = 0 if n.path == "/" else n.path.count("/")
        indent = "  " * max(depth - 1, 0) + ("" if n.path == "/" else "  ")
        name = n.path if n.path == "/" else n.path.rsplit("/", 1)[-1]
        if not name.isprintable():  # a newline in a name (the Diamond k11 master has one)
            name = repr(name)  # split its line in two
        if n.kind == "group":
            lines.append(f"{indent}{name}/" if n.path != "/" else "/")
            if n.reason:
                lines[-1] += f"  [{n.reason}]"
            continue
        if n.shape is None and not n.direct:  # left out by a b2h5 view: only the reason
            lines.append(f"{indent}{name}  [NOT direct: {n.reason}]")
            continue
        parts = [f"{n.shape}", n.dtype or "?"]
        parts.append(f"chunks={n.chunks}" if n.chunks else n.layout)
        if n.blocks:
            parts.append(f"blocks={n.blocks}")
        filt = "+".join(n.filters) if n.filters else "none"
        parts.append(f"filters={filt}" + (f"({n.blosc2})" if n.blosc2 else ""))
        parts.append(f"stored={_fmt_size(n.stored)}" if n.stored is not None else "stored=?")
        if n.ratio is not None:
            parts.append(f"ratio={n.ratio:.2f}")
        verdict = "direct" if n.direct else f"NOT direct: {n.reason}"
        if n.direct and n.reason:
            verdict = f"direct ({n.reason})"
        lines.append(f"{indent}{name}  " + "  ".join(parts) + f"  [{verdict}]")
    return "\n".join(lines)


def to_json(nodes: list[NodeInfo]) -> str:
    """The nodes as a JSON list (tuples become lists)."""
    return json.dumps([asdict(n) for n in nodes], indent=2)
