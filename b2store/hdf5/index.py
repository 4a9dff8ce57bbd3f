"""Walk an HDF5 file once with h5py and index it: Zarr metadata keys plus chunk references.

Contract
--------
:func:`build_index` visits every group and dataset of an open :class:`h5py.File` (recursively,
following soft links, and external links only when asked) and returns a :class:`FileIndex`:

* ``meta``: every Zarr metadata key (v3 ``zarr.json`` or v2 ``.zgroup``/``.zarray``/``.zattrs``/
  ``.zmetadata``) rendered by :mod:`b2store._zarrmeta`, consolidated;
* ``tables``: for every array node a :class:`ChunkTable` of NumPy arrays (sorted linear chunk index,
  byte offset, byte size, HDF5 filter mask) plus inline chunks (compact data, decoded vlen strings,
  encoded fill chunks). Unallocated chunks are simply absent.

Only h5py's metadata and chunk-index APIs are used (``DatasetID.chunk_iter``); chunk bytes are
read later, by the filesystem, through the target fsspec filesystem. No zarr I/O happens while
h5py objects are alive in the walk (the kerchunk deadlock). The index is immutable, picklable
and compact (about 28 bytes per chunk).

Features b2store cannot present raise :class:`UnsupportedHDF5FeatureError` naming the file,
dataset and feature, or (``unsupported="warn" | "skip"``) drop the dataset.

This module holds the walk (groups, links and hard-link aliases, one builder per storage
layout) and the index classes, which stay here: sidecars and pickles name them by this module.
Its parts of one concern each are private siblings: ``_dtypes`` (which stored types can be
served raw, and as what dtype), ``_fills`` (fill values as HDF5, netCDF readers, zarr and
xarray read them), ``_virtual`` (virtual datasets onto their sources' chunks), ``_dimensions``
(one size per netCDF dimension name in a group) and ``_external`` (where linked files are).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import h5py
import numpy as np

from b2store._zarrmeta import (
    ArrayMeta,
    GroupMeta,
    Node,
    bytes_codec,
    is_big_endian,
    packed_dtype,
    render_v2,
    render_v3,
)
from b2store.errors import DamagedHDF5FileError, UnsupportedHDF5FeatureError
from b2store.hdf5 import metadata as md
from b2store.hdf5._chunk_rows import ChunkCollector
from b2store.hdf5._dimensions import reconcile_dimensions
from b2store.hdf5._dtypes import (
    matches_file_type,
    no_zarr_float,
    nullterm_ranges,
    plain_dtype,
    repack,
    stored_layout_issue,
)
from b2store.hdf5._external import OpenExternal
from b2store.hdf5._fills import (
    all_chunks_stored,
    edges_hold_fill,
    is_same_fill,
    is_v3_fill,
    is_value_of,
    is_zero,
    null_fill_reads_zeros,
    string_fill_as_missing_value,
    vlen_fill,
)
from b2store.hdf5._links import ExternalLinkMet, follow_path
from b2store.hdf5._target_errors import _scrub
from b2store.hdf5._virtual import map_virtual

__all__ = [
    "CONTIGUOUS_CHUNK_BYTES",
    "PADDED_COMPOUND_LIMIT",
    "STRADDLE_LIMIT",
    "VLEN_STRING_LIMIT",
    "ChunkTable",
    "FileIndex",
    "build_index",
    "open_local_file",
]


def open_local_file(path: str) -> h5py.File:
    """A local HDF5 file opened read-only with h5py, also while an SWMR writer appends to it.

    A file that an SWMR writer holds open (or left so: a writer that died, or a copy of a file
    taken during acquisition) is marked "open for write" in its superblock; HDF5 opens it for
    reading in SWMR mode only.
    """
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
        try:
            return h5py.File(path, "r", swmr=True)
        except OSError:
            raise OSError(
                f"{path} is marked open for writing by a writer that did not close it (it "
                f"crashed, or still runs without SWMR): {exc}. If no process writes it any "
                "more, clear the mark on a copy (h5clear -s copy.h5) and open the copy."
            ) from exc


Unsupported = Literal["raise", "warn", "skip"]

#: Target size of the virtual chunks that split a contiguous dataset (see ``_contiguous``).
CONTIGUOUS_CHUNK_BYTES = 4 * 2**20
#: Largest vlen-string dataset (elements) decoded at open and inlined.
VLEN_STRING_LIMIT = 1_000_000
#: Largest compound dataset with padding between fields (bytes, repacked) decoded at open.
PADDED_COMPOUND_LIMIT = 64 * 2**20
#: Largest dataset (bytes) of a type HDF5 converts on read (see
#: ``_dtypes.stored_layout_issue``) that is read with h5py at open and inlined.
CONVERTED_LIMIT = 64 * 2**20
#: Most bytes of straddling edge chunks (variables shorter than their netCDF dimension, not
#: pre-filled: see ``_Walker._straddling``) read at open and inlined, for a whole file: each
#: such variable would hold up to ``CONVERTED_LIMIT`` in memory (and in sidecars and refs), and
#: a file being written holds many short variables at once.
STRADDLE_LIMIT = 64 * 2**20

#: Paths presented again under further links (HDF5 hard or soft links) to groups already
#: presented: at most ALIAS_NODE_LIMIT, or ALIAS_FACTOR times the file's distinct nodes if
#: more. Groups linked twice at each of 20 levels are a million paths, whose walk at open
#: never ended. Each such link is followed whole or not at all (see ``_Walker.walk_aliases``).
ALIAS_NODE_LIMIT = 10_000
ALIAS_FACTOR = 8
#: In the note (and the warning at each open) saying that links were left out by that bound
ALIAS_CAP_NOTE = "link(s) to groups presented at other paths were not followed"

#: how the walk's notes on links whose targets it does not present begin (after the
#: ``"{url}:/{path}: "`` of the node): external links not followed, links that do not resolve
LINK_LEFT_OUT_NOTES = ("external link ", "link does not resolve", "soft link to ")
#: ... and on every link it did not follow (the targets of these are presented elsewhere)
LINK_NOTES = (*LINK_LEFT_OUT_NOTES, "link back to ", "not presented: ")
#: how the note on an external link not followed ends
NOT_FOLLOWED_NOTE = " not followed (pass follow_external_links=True)"

_HINT = "Pass unsupported='skip' (or 'warn') to open the rest of the file."
_NO_LAPL = object()
#: ``h5py.Dataset(oid, readonly=...)`` (see ``_Walker._open_member``)
_DATASET_TAKES_READONLY = "readonly" in inspect.signature(h5py.Dataset.__init__).parameters

#: ``_scrub`` of the few file URLs one walk meets, once each (not once per node)
_scrub_url = functools.lru_cache(maxsize=64)(_scrub)


@dataclass(frozen=True, kw_only=True)
class ChunkTable:
    """Where the chunks of one Zarr array live.

    ``lin`` is the C-order linear index of each allocated chunk in the chunk grid, sorted;
    ``offsets``/``sizes``/``masks`` are parallel to it. ``inline`` maps a linear index to bytes
    served as is. ``fill_chunk`` (if set) is served for every chunk that is neither allocated nor
    inline. ``pad_to`` > 0 zero-pads short raw chunks (edge virtual chunks of contiguous data).
    ``urls``/``url_index`` (virtual datasets only) name the file of each row.
    ``masked`` serves ``filters.frame_chunk(raw, mask)``; ``zero_skip`` turns Blosc2 frames that
    are special ZERO chunks into missing keys.
    """

    path: str
    url: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    grid: tuple[int, ...]
    lin: np.ndarray[Any, np.dtype[np.int64]]
    offsets: np.ndarray[Any, np.dtype[np.uint64]]
    sizes: np.ndarray[Any, np.dtype[np.uint64]]
    masks: np.ndarray[Any, np.dtype[np.uint32]]
    inline: dict[int, bytes] = field(default_factory=dict)
    fill_chunk: bytes | None = None
    urls: tuple[str, ...] = ()
    url_index: np.ndarray[Any, np.dtype[np.uint16]] | None = None
    pad_to: int = 0
    masked: bool = False
    zero_skip: bool = False

    def url_of(self, row: int) -> str:
        """The file holding chunk ``row`` (virtual datasets may span several files)."""
        if self.url_index is None:
            return self.url
        return self.urls[int(self.url_index[row])]

    @property
    def nchunks(self) -> int:
        """Number of chunks in the grid (allocated or not)."""
        return int(np.prod(self.grid, dtype=object))

    def linear(self, coords: tuple[int, ...]) -> int:
        """Linear index of chunk ``coords``; ValueError when outside the grid."""
        if len(coords) != len(self.grid):
            raise ValueError(f"Expected {len(self.grid)} chunk coordinates. Got {coords} instead.")
        lin = 0
        for c, g in zip(coords, self.grid, strict=True):
            if not 0 <= c < g:
                raise ValueError(f"chunk {coords} is outside the chunk grid {self.grid}")
            lin = lin * g + c
        return lin

    def find(self, lin: int) -> int:
        """Row of ``lin`` in the arrays, or -1 when the chunk is not allocated."""
        n = self.lin.size
        if n and int(self.lin[-1]) == n - 1:  # every chunk allocated: the row is the index
            return lin if 0 <= lin < n else -1
        i = int(np.searchsorted(self.lin, lin))
        return i if i < self.lin.size and int(self.lin[i]) == lin else -1

    @functools.cached_property
    def stored_lins(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Sorted linear indices of every allocated or inline chunk (each once); computed once
        (listing a chunk directory bisects it)."""
        if not self.inline:
            return self.lin
        return np.union1d(
            self.lin, np.fromiter(self.inline, dtype=np.int64, count=len(self.inline))
        )

    def coords(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Grid coordinates (n, ndim) of every allocated or inline chunk, in linear order.

        The fill chunks the v2 view serves for unallocated chunks are not among them; the
        filesystem lists those keys itself (from the grid), so that a copy of the v2 view
        (``fs.get``) reads what the view reads (see docs/hdf5.md).
        """
        allk = self.stored_lins
        if not self.grid:
            return np.zeros((allk.size, 0), dtype=np.int64)
        return np.stack(np.unravel_index(allk, self.grid), axis=-1).astype(np.int64)


@dataclass(frozen=True, kw_only=True)
class FileIndex:
    """The whole Zarr view of one HDF5 file: metadata keys, chunk tables, notes."""

    zarr_format: int
    #: key -> JSON bytes (a :class:`b2store._zarrmeta.RenderedMeta`: groups' consolidated
    #: documents are assembled on request)
    meta: Mapping[str, bytes]
    tables: dict[str, ChunkTable]
    notes: tuple[str, ...] = ()
    #: Other files the index depends on (virtual dataset sources, followed external links), each
    #: with the identity stamp it had when the index was built (see ``HDF5FileSystem``).
    sources: tuple[tuple[str, str], ...] = ()
    #: The notes the filesystem warns about at each open (each new instance, also of an index
    #: from a cache): the datasets left out with ``unsupported="warn"`` and the links left out
    #: by the alias bound (``ALIAS_CAP_NOTE``).
    warnings: tuple[str, ...] = ()
    #: What xarray's netCDF engines show that Zarr metadata cannot carry, for the ``"b2h5"``
    #: xarray engine (:mod:`b2store.hdf5.xarray_backend`), keyed by node path (root ``""``):
    #: a group's ``"unlimited_dims"`` (names of its unlimited netCDF dimensions) and an array's
    #: ``"attribute_types"`` (see :func:`~b2store.hdf5.metadata.attribute_types`). ``None``
    #: when not recorded (an index from an older sidecar): the engine then goes without.
    xarray_hints: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class _Plan:
    """The codec plan of a dataset without HDF5 filters (filters.CodecPlan's shape)."""

    codecs: tuple[Any, ...]
    v2_filters: tuple[Any, ...] | None
    v2_compressor: Any
    masked: bool = False
    blosc2: bool = False


def _plain_plan(
    dtype: np.dtype[Any], chunks: tuple[int, ...] = (), node: _Node | None = None
) -> Any:
    """Raw bytes as stored; NUL-terminated strings (``node.nullterm``) through ``b2store_hdf5``."""
    if node is not None and node.nullterm:
        from b2store.hdf5 import filters

        return filters.plan_codecs(
            (), dtype, chunks, masks=(), where=node.where, nullterm=node.nullterm
        )
    return _Plan(codecs=(bytes_codec(dtype),), v2_filters=None, v2_compressor=None)


def _filter_plans(
    dcpl: Any, node: _Node, chunks: tuple[int, ...], masks: set[int]
) -> tuple[Any, Callable[[], Any] | None]:
    """The codec plan for a filtered dataset's chunks (with these filter masks), and, when that
    plan is not masked, the masked plan the v2 view falls back to if it cannot encode the fill
    chunk (the same masks plus "every filter skipped", see ``_Walker._add``); else None."""
    from b2store.hdf5 import filters

    pipeline = filters.read_pipeline(dcpl)

    def plan_for(masks: set[int]) -> Any:
        return filters.plan_codecs(
            pipeline, node.dtype, chunks, masks=masks, where=node.where, nullterm=node.nullterm
        )

    plan = plan_for(masks)
    if plan.masked:
        return plan, None
    return plan, lambda: plan_for(masks | {0, (1 << len(pipeline)) - 1})


@dataclass(frozen=True, kw_only=True)
class _Node:
    """One dataset on its way to a Zarr array: what the per-layout builders share.

    ``shape``, ``dtype``, ``fill`` and ``dims`` are the Zarr view's (after array dtypes become
    trailing dimensions and short netCDF variables are padded); builders derive variants with
    :func:`dataclasses.replace`. ``where`` (``file:/path``) prefixes every error message.
    """

    ds: h5py.Dataset
    path: str
    url: str
    where: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fill: Any
    attrs: dict[str, Any]
    dims: tuple[str, ...]
    #: byte ranges of each item holding NUL-terminated fixed-length strings (see
    #: ``_dtypes.nullterm_ranges``)
    nullterm: tuple[tuple[int, int], ...] = ()
    #: axes along which a variable shorter than its netCDF dimension is padded although its
    #: stored edge chunk does not end at its extent (see ``_Walker._straddling``)
    straddle: tuple[int, ...] = ()


def _prod(sizes: tuple[Any, ...]) -> int:
    """The product of ``sizes`` as a Python int (exact, unlike NumPy's int64; cheaper than
    ``np.prod(..., dtype=object)``, once per dataset)."""
    return math.prod(int(n) for n in sizes)


def _whole_bytes(ds: h5py.Dataset, h5_dtype: np.dtype[Any], dtype: np.dtype[Any]) -> bytes:
    """The data of ``ds`` (h5py's dtype ``h5_dtype``) as C-ordered bytes of ``dtype``.

    Plain numbers are read with one ``H5Dread`` into ``dtype`` (what ``ds[()]`` does, without
    its selection machinery, a fifth of the walk of a file of many tiny compact datasets);
    the rest goes through ``ds[()]``, which converts strings, enums, compounds, ...
    """
    shape = tuple(int(n) for n in ds.shape)
    if (
        h5_dtype.metadata is None
        and h5_dtype.kind in "biuf"
        and h5_dtype == dtype
        and _prod(shape) > 0
    ):
        out = np.empty(shape, dtype=dtype)
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out.tobytes()
    return np.ascontiguousarray(ds[()], dtype=dtype).tobytes()


def _addressable(name: str) -> bool:
    """Whether Zarr can address a member named ``name`` (zarr normalises ``.``, ``..`` and
    backslashes in keys)."""
    return name not in (".", "..") and "\\" not in name


class _Walker:
    def __init__(
        self,
        *,
        url: str,
        zarr_format: int,
        unsupported: Unsupported,
        follow_external_links: bool,
        open_external: OpenExternal | None,
    ) -> None:
        self.url = url
        self.zarr_format = zarr_format
        self.unsupported = unsupported
        self.follow = follow_external_links
        self.open_external = open_external
        self.nodes: dict[str, Node] = {}
        self.tables: dict[str, ChunkTable] = {}
        self.notes: list[str] = []
        #: the notes to warn about at each open (FileIndex.warnings)
        self.warnings: list[str] = []
        #: lengths of the netCDF dimensions (pure dimension scales, not served), by path
        self.dimension_lengths: dict[str, int] = {}
        #: (name, length) of each dimension scale met, by object (see ``md.dimension_length``)
        self.scale_lengths: dict[Any, tuple[str, int]] = {}
        #: bytes of straddling edge chunks still allowed to be read at open (STRADDLE_LIMIT)
        self.straddle_left = STRADDLE_LIMIT
        #: groups walked (their first path), the file's distinct nodes, and the links to
        #: walked groups met meanwhile, walked once the file's size is known (walk_aliases);
        #: alias_depth > 0 while walking such a link
        self.walked: dict[tuple[Any, int] | None, str] = {}
        self.unique_nodes = 0
        self.deferred: list[tuple[h5py.Group, str, str, frozenset[Any], str, str]] = []
        self.alias_depth = 0
        #: paths under each group walked again, where they do not depend on its enclosing
        #: groups (see ``_paths_under``)
        self.sizes: dict[tuple[Any, int], int] = {}
        #: FileIndex.xarray_hints
        self.hints: dict[str, dict[str, Any]] = {}
        #: whether each open file (by HDF5 file number) is read-only (see ``_open_member``)
        self._readonly: dict[int, bool] = {}

    # -- policy -------------------------------------------------------------------------------
    def _unsupported(self, exc: UnsupportedHDF5FeatureError) -> None:
        if self.unsupported == "raise":
            raise exc
        self.notes.append(str(exc))
        if self.unsupported == "warn":
            # warned by the filesystem at each open: a cached index warned only once per process
            self.warnings.append(str(exc))

    def _damaged(self, where: str, what: str, exc: BaseException) -> None:
        """A node HDF5 cannot read: raise :class:`DamagedHDF5FileError`, or with
        ``unsupported="skip"``/``"warn"`` leave it out with a note (and a warning)."""
        if isinstance(exc, NotImplementedError | RecursionError):
            raise exc  # RuntimeErrors of ours or of Python, not HDF5's
        err = DamagedHDF5FileError(
            f"{where}: {what}: the HDF5 file looks damaged, or was written by a newer HDF5 than "
            f"h5py's {h5py.version.hdf5_version} ({exc}). Check it with h5dump or h5py, or "
            f"restore it from a copy. {_HINT}"
        )
        if self.unsupported == "raise":
            raise err from exc
        self.notes.append(str(err))
        if self.unsupported == "warn":
            self.warnings.append(str(err))

    def _error(self, where: str, feature: str, todo: str = "") -> UnsupportedHDF5FeatureError:
        return UnsupportedHDF5FeatureError(
            f"{where}: {feature}. {todo + ' ' if todo else ''}{_HINT}"
        )

    # -- walk ---------------------------------------------------------------------------------
    def walk(self, group: h5py.Group, path: str, url: str, ancestors: frozenset[Any]) -> None:
        self.nodes[path] = GroupMeta(attributes=md.node_attributes(group, self.notes))
        self.hints[path] = {"unlimited_dims": []}
        ancestors = ancestors | {group.id}
        try:
            names = list(group)
        except RuntimeError as exc:  # h5py's error for HDF5's "bad symbol table signature"...
            self._damaged(f"{_scrub_url(url)}:/{path}", "its members cannot be listed", exc)
            return
        for name in names:
            if isinstance(name, bytes):
                # h5py gives a name that is no UTF-8 as bytes (it crashed the walk with a
                # bare TypeError): Zarr keys are text, and a replaced name could collide
                shown = name.decode("utf-8", errors="replace")
                self._unsupported(
                    self._error(
                        f"{_scrub_url(url)}:/{path + '/' if path else ''}{shown}",
                        f"has a name ({name!r}) that is not UTF-8 text, as Zarr keys must be",
                        "Rename it (h5py: f.move(old_name_bytes, new_name)).",
                    )
                )
                continue
            child = f"{path}/{name}" if path else name
            where = f"{_scrub_url(url)}:/{child}"  # messages never show credentials
            if not _addressable(name):
                # zarr normalises such keys (".." climbs, "\\" becomes "/"): the node would
                # break every listing of this group
                self._unsupported(
                    self._error(where, f"has a name ({name!r}) that Zarr cannot address")
                )
                continue
            try:
                found = self._member(group, name, url)
            except DamagedHDF5FileError as exc:
                self._damaged(where, "cannot be opened", exc.__cause__ or exc)
                continue
            if isinstance(found, str):
                self.notes.append(f"{where}: {found}")
                continue
            obj, child_url = found
            if isinstance(obj, h5py.Group) and obj.id in ancestors:
                self.notes.append(f"{where}: link back to an enclosing group not followed")
                continue
            # (file, object) key, not the ObjectID: that would keep every group open
            gkey = (obj.id.fileno, hash(obj.id)) if isinstance(obj, h5py.Group) else None
            first = self.walked.get(gkey) if gkey is not None else None
            if first is not None and not self.alias_depth:
                # a group presented already, reached again: presented whole or not at all,
                # once the file's own nodes are known (walk_aliases)
                self.deferred.append((obj, child, child_url, ancestors, first, where))
                continue
            if not self.alias_depth:
                self.unique_nodes += 1
            if isinstance(obj, h5py.Group):
                if not self.alias_depth:
                    self.walked[gkey] = f"/{child}"
                self.walk(obj, child, child_url, ancestors)
            elif isinstance(obj, h5py.Dataset):
                zname = md.netcdf_variable_name(group, name)
                zchild = f"{path}/{zname}" if path else zname
                try:
                    self.dataset(obj, zchild, child_url, f"{_scrub_url(child_url)}:/{child}")
                except UnsupportedHDF5FeatureError as exc:
                    self._unsupported(exc)
                except RuntimeError as exc:  # h5py's error for a damaged chunk index...
                    self._damaged(where, "cannot be indexed", exc)
            else:
                self.notes.append(f"{where}: {type(obj).__name__} skipped (not a group/dataset)")

    def walk_aliases(self) -> None:
        """Walk the links to groups presented already (deferred by :meth:`walk`), each whole
        or not at all, within ALIAS_NODE_LIMIT / ALIAS_FACTOR further paths. A group shown
        partly under a link (the first of its 4000 datasets only) read as the whole group.
        Links left out get a note each and one summary note (ALIAS_CAP_NOTE, also in
        ``warnings``: the filesystem warns about it at each open).
        """
        budget = max(ALIAS_NODE_LIMIT, ALIAS_FACTOR * self.unique_nodes)
        left, skipped = budget, 0
        for obj, child, url, ancestors, first, where in self.deferred:
            need = 1 + self._paths_under(obj, url, left - 1)
            if need > left:
                skipped += 1
                self.notes.append(
                    f"{where}: not presented: this link to the group presented as {first} "
                    f"would add more paths than the {left} left of the {budget} further paths "
                    "b2store presents under such links"
                )
                continue
            left -= need
            self.alias_depth += 1
            try:
                self.walk(obj, child, url, ancestors)
            finally:
                self.alias_depth -= 1
        self.deferred.clear()
        if not skipped:
            return
        self.warnings.append(
            f"{_scrub(self.url)}: {skipped} {ALIAS_CAP_NOTE}: the file's links present its groups "
            f"under more paths than b2store presents (at most {budget} further paths: "
            f"{ALIAS_NODE_LIMIT}, or {ALIAS_FACTOR} per distinct node of the file; each linked "
            "group is shown whole or not at all). Read those groups at the paths where they "
            "are presented (the filesystem's notes, fs.notes, name each link left out and "
            "that path), or read the file with h5py."
        )
        self.notes.append(self.warnings[-1])

    def _member(self, group: h5py.Group, name: str, url: str) -> tuple[Any, str] | str:
        """(object, url of its file) of member ``name`` of ``group`` (in file ``url``), or
        why the walk leaves it out whatever its path (a note): an external link not to be
        followed, or a link that does not resolve. :meth:`walk` and :meth:`_paths_under`
        resolve members through it, so that they present and count the same nodes."""
        try:
            kind = group.id.links.get_info(name.encode("utf-8")).type
        except (KeyError, OSError, ValueError, TypeError):
            kind = None
        if kind in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            # what ``group[name]`` gives, from one lookup (``group.get`` first asked whether
            # the link resolves, then ``group[name]`` resolved it again: a third of the walk
            # of a file of many small datasets)
            try:
                obj = self._open_member(group, name)
            except (KeyError, OSError, RuntimeError) as exc:
                if kind == h5py.h5l.TYPE_HARD:  # its object exists: HDF5 cannot read it
                    raise DamagedHDF5FileError(str(exc)) from exc  # (the walk's _damaged)
                # a soft link HDF5 cannot resolve itself may cross an external link to a file
                # HDF5 cannot open (one beside a remote file)
                return self._soft_link_across_files(group, name, url, exc)
            if kind == h5py.h5l.TYPE_HARD or obj.id.fileno == group.id.fileno:
                return obj, url
            # HDF5 resolved it through an external link into another file, by its own rules:
            # that file's chunk offsets are not offsets in ``url``
            return self._soft_link_across_files(group, name, url)
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            if not self.follow or self.open_external is None:
                return f"external link to {link.filename}:{link.path}{NOT_FOLLOWED_NOTE}"
            try:
                # link by link: a target path crossing a further external link was opened by
                # HDF5 itself, and served with this file's url
                return self._follow(group, name, url, self.open_external)
            except (OSError, KeyError, ValueError) as exc:
                return f"external link {link.filename}:{link.path} does not resolve ({exc})"
        try:
            return group[name], url
        except (KeyError, OSError) as exc:
            return f"link does not resolve ({exc})"

    def _soft_link_across_files(
        self, group: h5py.Group, name: str, url: str, hdf5_error: BaseException | None = None
    ) -> tuple[Any, str] | str:
        """Soft link ``name`` of ``group`` whose path crosses an external link, or that HDF5
        could not resolve (``hdf5_error``): followed link by link when following external
        links, else the note why it is left out."""
        target = group.get(name, getlink=True).path
        opener = self.open_external if self.follow else None
        try:
            return self._follow(group, name, url, opener)
        except ExternalLinkMet:
            return f"soft link to {target} leads through an external link{NOT_FOLLOWED_NOTE}"
        except (OSError, KeyError, ValueError) as exc:
            if hdf5_error is not None:  # HDF5's own reason first
                return f"link does not resolve ({hdf5_error})"
            return f"soft link to {target} does not resolve ({exc})"

    def _follow(
        self, group: h5py.Group, name: str, url: str, opener: OpenExternal | None
    ) -> tuple[Any, str]:
        """(object, url of its file) of member ``name`` of ``group``, its links followed one
        at a time through ``opener`` (:func:`~b2store.hdf5._links.follow_path`)."""
        return follow_path(group.file["/"], url, f"{group.name}/{name}", opener, 0)

    def _open_member(self, group: h5py.Group, name: str) -> Any:
        """``group[name]`` (h5py's ``Group._get``), the read-only mode of the file asked once.

        Uses two h5py internals (``Group._lapl``, ``Dataset(..., readonly=)``): an h5py without
        them gets plain ``group[name]`` (slower on files of many datasets, same objects).
        """
        lapl = getattr(group, "_lapl", _NO_LAPL)
        if lapl is _NO_LAPL or not _DATASET_TAKES_READONLY:
            return group[name]
        oid = h5py.h5o.open(group.id, name.encode("utf-8"), lapl=lapl)
        otype = h5py.h5i.get_type(oid)
        if otype == h5py.h5i.GROUP:
            return h5py.Group(oid)
        if otype == h5py.h5i.DATASET:
            fileno = oid.fileno
            readonly = self._readonly.get(fileno)
            if readonly is None:
                readonly = self._readonly[fileno] = group.file.mode == "r"
            return h5py.Dataset(oid, readonly=readonly)
        if otype == h5py.h5i.DATATYPE:
            return h5py.Datatype(oid)
        raise TypeError("Unknown object type")

    def _paths_under(self, group: h5py.Group, url: str, limit: int) -> int:
        """How many paths walking ``group`` again presents under it, or a number above
        ``limit`` (counting stops there). An upper bound: a walk leaves out the links back to
        its enclosing groups. Counts of groups whose walk never met such a link do not depend
        on where they are, and are kept (groups linked twice at each of 20 levels: 40 counts).
        """
        chain: set[tuple[Any, int]] = set()

        def count(g: h5py.Group, url: str, limit: int) -> tuple[int, bool]:
            key = (g.id.fileno, hash(g.id))
            if key in self.sizes:
                return self.sizes[key], True
            chain.add(key)
            n, kept = 0, True
            try:
                for name in g:
                    if n > limit:
                        return n, False
                    if isinstance(name, bytes) or not _addressable(name):
                        continue
                    try:
                        found = self._member(g, name, url)
                    except DamagedHDF5FileError:  # the walk says so where it meets it
                        continue
                    if isinstance(found, str):
                        continue
                    obj, child_url = found
                    if isinstance(obj, h5py.Dataset):
                        n += 1
                    elif isinstance(obj, h5py.Group):
                        sub = (obj.id.fileno, hash(obj.id))
                        if sub in chain:  # a link back to an enclosing group: not followed
                            kept = False
                            continue
                        m, sub_kept = count(obj, child_url, limit - n - 1)
                        n += 1 + m
                        kept = kept and sub_kept
            finally:
                chain.discard(key)
            if kept:
                self.sizes[key] = n
            return n, kept

        return count(group, url, limit)[0]

    # -- datasets -----------------------------------------------------------------------------
    def dataset(self, ds: h5py.Dataset, path: str, url: str, where: str) -> None:
        if ds.shape is None:
            raise self._error(
                where, "has a NULL dataspace (H5S_NULL, no elements); it has no Zarr equivalent"
            )
        dcpl = ds.id.get_create_plist()
        ds_attrs = md.NodeAttrs(ds, dcpl)  # each attribute read once, whoever asks
        if md.is_unlimited_dimension(ds, ds_attrs):
            group = self.hints.setdefault(path.rpartition("/")[0], {"unlimited_dims": []})
            group["unlimited_dims"].append(path.rpartition("/")[2])
        types = md.attribute_types(ds, ds_attrs)
        if types:
            self.hints[path] = {"attribute_types": types}
        if md.is_pure_dimension(ds, ds_attrs):
            if len(ds.shape) == 1:  # a netCDF dimension, not a variable: its length names a size
                self.dimension_lengths[path] = md.dimension_length(ds, self.scale_lengths)
            return
        if dcpl.get_external_count() > 0:
            raise self._error(
                where,
                "stores its data in external raw files (H5D_CONTIGUOUS with an external file list)",
                "Read it with h5py.",
            )
        shape = tuple(int(s) for s in ds.shape)
        try:
            dtype = h5_dtype = ds.dtype
        except (TypeError, ValueError) as exc:  # no numpy type: H5T_TIME, 128-bit floats, ...
            raise self._error(where, f"has an HDF5 type numpy cannot represent ({exc})") from None
        attrs = md.node_attributes(ds, self.notes, ds_attrs)
        dims, dim_lengths = md.dimensions(ds, self.scale_lengths, ds_attrs)
        node = _Node(
            ds=ds,
            path=path,
            url=url,
            where=where,
            shape=shape,
            dtype=dtype,
            fill=None,
            attrs=attrs,
            dims=dims,
        )
        string_info = h5py.check_string_dtype(dtype)
        if string_info is not None and string_info.length is None:
            self._vlen_strings(node, dim_lengths)
            return
        if h5py.check_ref_dtype(dtype) is not None:
            kind = "region" if h5py.check_ref_dtype(dtype) is h5py.RegionReference else "object"
            raise self._error(
                where,
                f"holds HDF5 {kind} references, which have no Zarr equivalent",
                "Read it with h5py and dereference the targets there.",
            )
        if dtype.kind == "O" or dtype.hasobject:
            base = h5py.check_vlen_dtype(dtype)
            what = (
                f"holds variable-length sequences of {np.dtype(base)} (a netCDF VLEN type, "
                "ragged arrays), which"
                if base is not None
                else f"has a dtype with variable-length or reference members ({dtype}), which"
            )
            raise self._error(
                where,
                f"{what} Zarr cannot read from raw chunks (they point into HDF5's heap)",
                "Read it with h5py or netCDF4.",
            )
        extra: tuple[int, ...] = ()
        if dtype.subdtype is not None:
            # an HDF5 array type: its element shape becomes trailing array dimensions
            base, extra = dtype.subdtype[0], tuple(int(n) for n in dtype.subdtype[1])
            if base.fields or base.subdtype is not None or base.hasobject:
                raise self._error(where, f"has an array dtype of a compound or array ({dtype})")
            if dcpl.get_nfilters() > 0:
                raise self._error(where, f"has an array dtype ({dtype}) and HDF5 filters")
            dtype, shape = base, shape + extra
            dims = md.extend_dimension_names(dims, extra)
        if dtype.fields and any(
            f[0].subdtype is not None or f[0].fields for f in dtype.fields.values()
        ):
            raise self._error(
                where,
                f"has a compound dtype with array or compound fields ({dtype}); Zarr's "
                "structured data types hold scalar fields only",
                "Read it with h5py or netCDF4.",
            )
        if self.zarr_format == 3 and dtype.fields and is_big_endian(dtype):
            # zarr 3.1.6 ignores the bytes codec's endian for structured dtypes
            raise self._error(
                where,
                f"has a compound dtype with big-endian fields ({dtype}); zarr 3.1 reads "
                "structured Zarr v3 data as little-endian",
                "Use zarr_format=2.",
            )
        dtype = plain_dtype(dtype)
        if no_zarr_float(dtype):
            raise self._error(
                where, f"has a {dtype} (long double) type, for which Zarr has no data type",
                "Read it with h5py.",
            )  # fmt: skip
        if dtype.fields and not matches_file_type(ds, dtype):
            raise self._error(where, f"has a compound dtype whose file layout differs from {dtype}")
        tid = ds.id.get_type()
        converted = stored_layout_issue(tid, dtype)
        fill = md.fill_value(ds, dcpl, h5_dtype)
        node = replace(
            node, shape=shape, dtype=dtype, fill=fill, dims=dims, nullterm=nullterm_ranges(tid)
        )
        if dtype.fields and packed_dtype(dtype) != dtype:
            self._padded_compound(node, dim_lengths)  # read with h5py: converts any type
            return
        if converted is not None:
            self._converted(node, converted, dim_lengths)
            return
        if extra:
            flat = np.asarray(fill, dtype=dtype).ravel()
            if flat.size and not (flat == flat[0]).all():
                raise self._error(where, f"has an array dtype with a non-uniform fill ({fill})")
            node = replace(node, fill=flat[0] if flat.size else None)
        layout = dcpl.get_layout()
        if dim_lengths[: len(ds.shape)] != shape[: len(ds.shape)]:
            node = self._pad_to_dimensions(node, dim_lengths, layout)
        if layout == h5py.h5d.CHUNKED:
            self._chunked(node, dcpl, extra)
        elif layout == h5py.h5d.CONTIGUOUS:
            self._contiguous(node)
        elif layout == h5py.h5d.VIRTUAL:
            if extra:
                raise self._error(where, f"is a virtual dataset with an array dtype ({dtype})")
            self._virtual(node)
        elif layout == h5py.h5d.COMPACT:
            self._add_whole(node, _whole_bytes(ds, h5_dtype, dtype))
        else:
            raise self._error(where, f"has an unknown storage layout ({layout})")

    def _pad_to_dimensions(self, node: _Node, lengths: tuple[int, ...], layout: int) -> _Node:
        """Grow a variable shorter than its (unlimited) netCDF dimension, as netCDF readers do.

        The added region has no chunks, so it reads as the fill value. When the variable's
        stored edge chunk does not end exactly at its extent and HDF5 did not fill it first
        (netCDF ``NC_NOFILL``, ``fill_value=False``), the bytes past the extent are whatever
        the writer left: those edge chunks are read at open and served with the fill there
        (``_straddling``, up to ``STRADDLE_LIMIT`` bytes per file). Otherwise the dimension is
        renamed ``<name>_<size>`` (noted) so that names still imply sizes.
        """
        ds, where, dims = node.ds, node.where, node.dims
        new_shape, new_dims = list(node.shape), list(dims)
        straddle: list[int] = []
        spent = 0
        for axis, (n, length) in enumerate(zip(ds.shape, lengths, strict=False)):
            if length <= n:
                continue
            need = self._straddling_bytes(ds, axis) if layout == h5py.h5d.CHUNKED else 0
            if layout == h5py.h5d.CHUNKED and (n % ds.chunks[axis] == 0 or edges_hold_fill(ds)):
                new_shape[axis] = length
            elif layout == h5py.h5d.CHUNKED and need <= min(CONVERTED_LIMIT, self.straddle_left):
                new_shape[axis] = length
                straddle.append(axis)
                self.straddle_left -= need
                spent += need
            else:
                new_dims[axis] = f"{dims[axis]}_{n}"
                self.notes.append(
                    f"{where}: {n} long along netCDF dimension {dims[axis]!r} of length {length};"
                    f" presented along dimension {new_dims[axis]!r} instead"
                )
        pad = md.padding_fill(ds)
        if tuple(new_shape) != node.shape and not is_same_fill(node.fill, pad, node.dtype):
            # fill time "never" with a recorded fill (h5py files; netCDF-C's NC_NOFILL records
            # none): netCDF readers pad with that fill, h5py reads the never-written chunks
            # inside the extent as zeros. One Zarr fill_value serves both only when every chunk
            # inside the extent is stored; else the dimensions are renamed as above.
            if all_chunks_stored(ds) and len(node.shape) == len(ds.shape):
                return replace(
                    node,
                    shape=tuple(new_shape),
                    dims=tuple(new_dims),
                    straddle=tuple(straddle),
                    fill=pad,
                )
            for axis, (n, length) in enumerate(zip(ds.shape, lengths, strict=False)):
                if new_shape[axis] != node.shape[axis]:
                    new_shape[axis] = node.shape[axis]
                    new_dims[axis] = f"{dims[axis]}_{n}"
                    self.notes.append(
                        f"{where}: {n} long along netCDF dimension {dims[axis]!r} of length "
                        f"{length}, with never-written chunks and a fill value ({pad}) that "
                        f"h5py does not read there; presented along dimension "
                        f"{new_dims[axis]!r} instead"
                    )
            straddle = []
            self.straddle_left += spent  # not read after all
        return replace(node, shape=tuple(new_shape), dims=tuple(new_dims), straddle=tuple(straddle))

    @staticmethod
    def _straddling_bytes(ds: h5py.Dataset, axis: int) -> int:
        """Bytes of the chunks of ``ds`` that hold its last index along ``axis``."""
        chunks = tuple(int(c) for c in ds.chunks)
        count = 1
        for a, (n, c) in enumerate(zip(ds.shape, chunks, strict=True)):
            if a != axis:
                count *= -(-int(n) // c)
        return count * int(np.prod(chunks, dtype=object)) * ds.dtype.itemsize

    def _straddling(
        self, node: _Node, chunks: tuple[int, ...], lin: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which allocated chunks (linear indices ``lin``) hold the last stored index of the
        variable along one of the axes ``node.straddle``: served as stored, they show the
        bytes past its extent (garbage under ``NC_NOFILL``) where netCDF readers pad with the
        fill value, so they are read at open instead (``_padded_chunks``)."""
        take = np.zeros(lin.size, dtype=bool)
        if not node.straddle or not lin.size:
            return take
        grid = tuple(-(-s // c) for s, c in zip(node.shape, chunks, strict=True))
        coords = np.stack(np.unravel_index(lin, grid), axis=-1)
        for axis in node.straddle:
            take |= coords[:, axis] == int(node.ds.shape[axis]) // chunks[axis]
        return take

    def _padded_chunks(
        self, node: _Node, chunks: tuple[int, ...], lin: np.ndarray[Any, Any]
    ) -> dict[int, bytes]:
        """The chunks ``lin`` read with h5py, the part past the stored extent the fill value."""
        ds, shape = node.ds, node.shape
        grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        out: dict[int, bytes] = {}
        for k in lin.tolist():
            coords = np.unravel_index(int(k), grid)
            box = tuple(
                slice(int(c) * n, min(int(c) * n + n, int(m)))
                for c, n, m in zip(coords, chunks, ds.shape, strict=False)
            )
            try:
                data = np.asarray(ds[box])
            except (OSError, RuntimeError, ValueError) as exc:
                raise self._error(
                    node.where,
                    f"is shorter than its netCDF dimension and HDF5 could not read its edge "
                    f"chunk {tuple(int(c) for c in coords)} ({exc})",
                ) from exc
            chunk = np.full(chunks, 0 if node.fill is None else node.fill, dtype=node.dtype)
            chunk[tuple(slice(0, m) for m in data.shape)] = data
            out[int(k)] = np.ascontiguousarray(chunk).tobytes()
        return out

    def _add(
        self,
        node: _Node,
        chunks: tuple[int, ...],
        plan: Any,
        *,
        rows: tuple[np.ndarray[Any, Any], ...] | None = None,
        inline: dict[int, bytes] | None = None,
        pad_to: int = 0,
        urls: tuple[str, ...] = (),
        url_index: np.ndarray[Any, np.dtype[np.uint16]] | None = None,
        masked_fallback: Callable[[], tuple[Any, dict[int, bytes]]] | None = None,
    ) -> None:
        """Record one array. ``masked_fallback`` gives a masked plan (and the inline chunks
        framed for it) for the v2 view when ``plan`` cannot encode the fill chunk: its fill
        chunk then skips every filter, as HDF5 skips an optional filter that fails."""
        path, url, shape, dims = node.path, node.url, node.shape, node.dims
        dtype, fill, attrs, where = node.dtype, node.fill, node.attrs, node.where
        grid = tuple(-(-s // c) if s else 0 for s, c in zip(shape, chunks, strict=True))
        if rows is None:
            e = np.zeros(0, dtype=np.int64)
            rows = (e, e.astype(np.uint64), e.astype(np.uint64), e.astype(np.uint32))
        lin, offsets, sizes, masks = rows
        v2_fill = attrs.get("_FillValue") if "_FillValue" in attrs else None
        if isinstance(v2_fill, list) or not is_value_of(v2_fill, dtype):
            v2_fill = None  # the _FillValue attribute (kept) still masks as in netCDF readers
        fill_chunk = None
        total = _prod(grid)
        if self.zarr_format == 2 and lin.size + len(inline or {}) < total:
            try:
                fill_chunk = self._fill_chunk(dtype, chunks, fill, v2_fill, plan, where)
            except UnsupportedHDF5FeatureError:
                if masked_fallback is None:
                    raise
                plan, inline = masked_fallback()
                fill_chunk = self._fill_chunk(dtype, chunks, fill, v2_fill, plan, where)
        if self.zarr_format == 3 and "_FillValue" in attrs:
            if dtype.kind == "S":
                # xarray decodes a v3 _FillValue attribute by the array's dtype and has no rule
                # for fixed-length bytes (netCDF char data): it could not open the variable
                attrs = {k: v for k, v in attrs.items() if k != "_FillValue"}
            elif dtype.kind == "T" or not is_v3_fill(attrs["_FillValue"], dtype):
                attrs = string_fill_as_missing_value(attrs)
            else:
                fv = md.encode_fill_attribute(attrs["_FillValue"], dtype)
                attrs = {**attrs, "_FillValue": md.unsigned_false_fill(fv, dtype, attrs)}
        if isinstance(attrs.get("_FillValue"), complex):
            # JSON has no complex numbers: [real, imag] (xarray takes a v2 _FillValue from the
            # array's fill_value, encoded by zarr)
            c = attrs["_FillValue"]
            attrs = {**attrs, "_FillValue": [c.real, c.imag]}
        meta = ArrayMeta(
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=fill,
            codecs=tuple(plan.codecs),
            v2_filters=plan.v2_filters,
            v2_compressor=plan.v2_compressor,
            v2_fill_value=v2_fill,
            attributes=attrs,
            dimension_names=dims,
        )
        self.nodes[path] = meta
        # all-zero Blosc2 chunks are served as missing keys only when zarr fills those with
        # zeros: the HDF5 fill in v3, the published fill_value (_FillValue, else 0) in v2
        zero_skip = (
            plan.blosc2
            and is_zero(fill, dtype)
            and (
                self.zarr_format == 3
                or (
                    is_zero(v2_fill, dtype)
                    and (v2_fill is not None or null_fill_reads_zeros(dtype))
                )
            )
        )
        self.tables[path] = ChunkTable(
            path=path,
            url=url,
            shape=shape,
            chunks=chunks,
            grid=grid,
            lin=lin,
            offsets=offsets,
            sizes=sizes,
            masks=masks,
            inline=dict(inline or {}),
            fill_chunk=fill_chunk,
            pad_to=pad_to,
            urls=urls if url_index is not None else (),
            url_index=url_index,
            masked=plan.masked,
            zero_skip=zero_skip,
        )

    def _fill_chunk(
        self,
        dtype: np.dtype[Any],
        chunks: tuple[int, ...],
        fill: Any,
        v2_fill: Any,
        plan: Any,
        where: str,
    ) -> bytes | None:
        """Encoded chunk full of the HDF5 fill, when the v2 fill would read differently."""
        if fill is None:
            return None
        want = np.full(chunks, fill, dtype=dtype)
        if v2_fill is not None:
            got: Any = np.full(chunks, v2_fill, dtype)
        else:
            got = np.zeros(chunks, dtype) if null_fill_reads_zeros(dtype) else None
        if got is not None and want.tobytes() == got.tobytes():
            return None
        import numcodecs

        try:
            buf: Any = want
            for cfg in plan.v2_filters or ():
                buf = numcodecs.get_codec(dict(cfg)).encode(buf)
            if plan.v2_compressor is not None:
                buf = numcodecs.get_codec(dict(plan.v2_compressor)).encode(buf)
            return bytes(np.asarray(buf).tobytes() if isinstance(buf, np.ndarray) else bytes(buf))
        except Exception as exc:
            if plan.masked:  # the fill chunk skips every filter, as HDF5 skips one that fails
                from b2store.hdf5.filters import frame_chunk

                nfilters = len(plan.v2_compressor["filters"])
                return frame_chunk(np.ascontiguousarray(want).tobytes(), (1 << nfilters) - 1)
            raise self._error(
                where,
                f"has unallocated chunks with a non-zero fill value that the "
                f"Zarr v2 view cannot encode ({exc})",
                "Use zarr_format=3.",
            ) from exc

    def _chunked(self, node: _Node, dcpl: Any, extra: tuple[int, ...] = ()) -> None:
        ds, where, shape, dtype = node.ds, node.where, node.shape, node.dtype
        chunks = tuple(int(c) for c in ds.chunks) + extra
        grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        if int(np.prod(grid, dtype=object)) >= 2**62:
            raise self._error(where, f"has a chunk grid {grid} too large to index")
        infos = ChunkCollector()
        if all(shape):
            ds.id.chunk_iter(infos)
        try:
            rows = infos.rows(chunks, grid)  # extra (array dtype) axes: offset 0
        except ValueError as exc:  # HDF5 never lists one: a damaged chunk index
            raise self._error(
                where, f"lists a chunk outside its chunk grid {grid} ({exc})"
            ) from exc
        order = np.argsort(rows[0], kind="stable")
        rows = tuple(r[order] for r in rows)
        take = self._straddling(node, chunks, rows[0])
        padded_lin = rows[0][take]
        rows = tuple(r[~take] for r in rows)
        nfilters = dcpl.get_nfilters()
        # padded edge chunks are served raw: every filter skipped (a filter mask of all ones)
        skip_all = (1 << nfilters) - 1
        raw_inline = self._padded_chunks(node, chunks, padded_lin)

        def framed(plan: Any) -> dict[int, bytes]:
            if not plan.masked:
                return raw_inline
            from b2store.hdf5.filters import frame_chunk

            return {k: frame_chunk(raw, skip_all) for k, raw in raw_inline.items()}

        if nfilters == 0:
            self._add(node, chunks, _plain_plan(dtype, chunks, node), rows=rows, inline=raw_inline)
            return
        masks = {int(m) for m in np.unique(rows[3])} | ({skip_all} if padded_lin.size else set())
        plan, masked_plan = _filter_plans(dcpl, node, chunks, masks)

        def masked_fallback() -> tuple[Any, dict[int, bytes]]:
            assert masked_plan is not None
            plan = masked_plan()
            return plan, framed(plan)

        self._add(
            node,
            chunks,
            plan,
            rows=rows,
            inline=framed(plan),
            masked_fallback=None if masked_plan is None else masked_fallback,
        )

    def _contiguous(self, node: _Node) -> None:
        """Serve contiguous data as virtual chunks of about ``CONTIGUOUS_CHUNK_BYTES``.

        A virtual chunk must be one byte range of the file, so its shape is ``(1, ..., 1, k,
        *shape[d + 1:])``: split along the first axis ``d`` whose trailing block fits the target
        (a (1, 5_000_000) float32 row is five 4 MiB chunks, not one of 20 MB).
        """
        ds, where, shape, dtype = node.ds, node.where, node.shape, node.dtype
        offset = ds.id.get_offset()
        nbytes = _prod(shape) * dtype.itemsize
        if not shape:
            chunks: tuple[int, ...] = ()
            step_bytes, k, outer, steps = nbytes, 1, 1, 1
        else:
            # bytes of one step along each axis (the block of all the axes after it)
            trailing = [_prod(shape[i + 1 :]) * dtype.itemsize for i in range(len(shape))]
            last = len(shape) - 1
            d = next(i for i, b in enumerate(trailing) if b <= CONTIGUOUS_CHUNK_BYTES or i == last)
            step_bytes = trailing[d]
            k = max(1, min(shape[d], CONTIGUOUS_CHUNK_BYTES // max(1, step_bytes)))
            outer = _prod(shape[:d])  # chunks of one along axes < d
            if d > 0 and outer > 1 and shape[d] % k:
                # each of the outer rows would end in a short, zero-padded chunk: split
                # evenly, else keep whole rows up to 16x the target size (as along axis 0)
                pieces = -(-shape[d] // k)
                even = next(
                    (shape[d] // m for m in range(pieces, 4 * pieces + 1) if shape[d] % m == 0),
                    None,
                )
                if even is not None:
                    k = even
                elif trailing[d - 1] <= 16 * CONTIGUOUS_CHUNK_BYTES:
                    d, k = d - 1, 1
                    step_bytes = trailing[d]
                    outer //= shape[d]
            chunks = (*(1,) * d, k, *(max(1, s) for s in shape[d + 1 :]))
            steps = shape[d]
        if offset is None or nbytes == 0:
            self._add(node, chunks if shape else (), _plain_plan(dtype))
            return
        plan = _plain_plan(dtype, chunks, node)
        storage = ds.id.get_storage_size()
        if storage < nbytes:
            raise self._error(
                where,
                f"is contiguous with {storage} bytes stored for {nbytes} "
                "bytes of data (damaged file?)",
            )
        per_outer = -(-steps // k) if shape else 1
        if outer * per_outer == 1:  # one chunk (most small datasets): the same rows, directly
            rows = (
                np.zeros(1, dtype=np.int64),
                np.array([offset], dtype=np.uint64),
                np.array([min(steps, k) * step_bytes], dtype=np.uint64),
                np.zeros(1, dtype=np.uint32),
            )
            self._add(node, chunks, plan, rows=rows, pad_to=k * step_bytes if shape else 0)
            return
        j = np.arange(per_outer, dtype=np.uint64)
        sizes_one = np.minimum(np.uint64(steps) - j * np.uint64(k), np.uint64(k)) * np.uint64(
            step_bytes
        )
        o = np.arange(outer, dtype=np.uint64)[:, None]
        starts = o * np.uint64(steps * step_bytes) + j[None, :] * np.uint64(k * step_bytes)
        n = outer * per_outer
        rows = (
            np.arange(n, dtype=np.int64),
            starts.reshape(-1) + np.uint64(offset),
            np.broadcast_to(sizes_one, (outer, per_outer)).reshape(-1).astype(np.uint64),
            np.zeros(n, dtype=np.uint32),
        )
        self._add(node, chunks, plan, rows=rows, pad_to=k * step_bytes if shape else 0)

    def _virtual(self, node: _Node) -> None:
        """A virtual dataset served from the chunks of its sources, where that is exact (see
        :func:`b2store.hdf5._virtual.map_virtual`); anything else raises the unsupported error.
        """

        def fail(why: str) -> UnsupportedHDF5FeatureError:
            return self._error(
                node.where,
                f"is a virtual dataset (H5D_VIRTUAL) that b2store cannot map onto its sources "
                f"({why})",
                "Open the source files instead.",
            )

        found = map_virtual(
            node.ds,
            url=node.url,
            shape=node.shape,
            dtype=node.dtype,
            fill=node.fill,
            open_external=self.open_external,
            fail=fail,
        )
        chunks, dtype = found.chunks, node.dtype
        node = replace(node, nullterm=found.nullterm)
        plan: Any = _plain_plan(dtype, chunks, node)
        masked_plan = None
        if found.dcpl is not None:
            masks = {int(m) for m in np.unique(found.rows[3])}
            plan, masked_plan = _filter_plans(found.dcpl, node, chunks, masks)
        self._add(
            replace(node, url=found.urls[0] if found.urls else node.url),
            chunks,
            plan,
            rows=found.rows,
            urls=found.urls,
            url_index=found.url_index if len(found.urls) > 1 else None,
            masked_fallback=None if masked_plan is None else lambda: (masked_plan(), {}),
        )

    def _padded_compound(self, node: _Node, lengths: tuple[int, ...]) -> None:
        """A compound type with gaps between fields (C struct alignment, e.g. netCDF4 compounds).

        Zarr's structured data types are packed (no field offsets), so the raw records cannot be
        served: small datasets are read with h5py at open, repacked and inlined; larger ones raise.
        """
        ds, where, shape, dtype, fill = node.ds, node.where, node.shape, node.dtype, node.fill
        packed = packed_dtype(dtype)
        size = int(np.prod(shape, dtype=object))
        if size * packed.itemsize > PADDED_COMPOUND_LIMIT:
            raise self._error(
                where,
                f"has a compound dtype with padding between fields ({dtype}, {dtype.itemsize} "
                f"bytes per record for {packed.itemsize} bytes of fields) and is larger than "
                f"{PADDED_COMPOUND_LIMIT} bytes (Zarr structured types are packed, so such "
                "datasets are repacked at open only when small)",
                "Read it with h5py, or rewrite it with a packed compound type.",
            )
        data = repack(np.asarray(ds[()]), packed)
        pfill = None
        if fill is not None:
            try:
                pfill = repack(np.asarray(fill), packed).reshape(())[()]
            except (TypeError, ValueError):
                pfill = None
        node = replace(node, dtype=packed, fill=pfill)
        self._add_whole(*self._grow_to_dimensions(node, data, lengths, PADDED_COMPOUND_LIMIT))

    def _converted(self, node: _Node, why: str, lengths: tuple[int, ...]) -> None:
        """A type whose stored bytes HDF5 converts on read (reduced precision or bit offset,
        non-IEEE floats, space-padded strings): the raw chunks cannot be served as they are.
        Small datasets are read with h5py at open (HDF5 converts them) and inlined; larger ones
        raise."""
        ds, where, shape, dtype = node.ds, node.where, node.shape, node.dtype
        size = int(np.prod(shape, dtype=object))
        if size * dtype.itemsize > CONVERTED_LIMIT:
            raise self._error(
                where,
                f"stores {why}; b2h5 serves stored bytes as they are and converts such datasets "
                f"at open only up to {CONVERTED_LIMIT} bytes",
                "Read it with h5py.",
            )
        data = np.ascontiguousarray(np.asarray(ds[()]), dtype=dtype)
        self._add_whole(*self._grow_to_dimensions(node, data, lengths, CONVERTED_LIMIT))

    def _grow_to_dimensions(
        self, node: _Node, data: np.ndarray[Any, Any], lengths: tuple[int, ...], limit: int
    ) -> tuple[_Node, bytes]:
        """``node`` and ``data`` (read at open) grown to its netCDF dimensions' ``lengths``.

        A variable shorter than its unlimited dimension reads padded with the fill value in
        netCDF readers; its data read at open is padded so, up to ``limit`` bytes (a few values
        along a dimension of millions would be inlined as one huge chunk). Beyond that, the
        axes it would be padded along are renamed ``<name>_<size>`` (noted), as in
        :meth:`_pad_to_dimensions`.
        """
        nd = len(node.ds.shape)
        shape = tuple(int(n) for n in data.shape)
        want = tuple(max(n, int(m)) for n, m in zip(shape[:nd], lengths[:nd], strict=False))
        want += shape[len(want) :]
        if want == shape:
            return node, data.tobytes()
        nbytes = int(np.prod(want, dtype=object)) * data.dtype.itemsize
        if nbytes > limit:
            dims = list(node.dims)
            for axis in range(nd):
                if want[axis] != shape[axis] and axis < len(dims):
                    dims[axis] = f"{node.dims[axis]}_{shape[axis]}"
                    self.notes.append(
                        f"{node.where}: {shape[axis]} long along netCDF dimension "
                        f"{node.dims[axis]!r} of length {want[axis]}; presented along dimension "
                        f"{dims[axis]!r} instead (padded, the data read at open would take "
                        f"{nbytes} bytes, over {limit})"
                    )
            return replace(node, dims=tuple(dims)), data.tobytes()
        out = np.zeros(want, dtype=data.dtype)
        # netCDF readers pad with the recorded fill, also under fill time "never"
        for pad in (md.padding_fill(node.ds), node.fill):
            if pad is None:
                continue
            # a fill that does not cast stays zeros, as h5py reads an undefined fill
            with contextlib.suppress(TypeError, ValueError):
                out[...] = np.asarray(pad).astype(data.dtype)
                break
        out[tuple(slice(0, n) for n in shape)] = data
        return replace(node, shape=want), out.tobytes()

    def _vlen_strings(self, node: _Node, lengths: tuple[int, ...]) -> None:
        """Variable-length strings: decoded at open and inlined; a variable shorter than its
        (unlimited) netCDF dimensions is padded with the fill value, as netCDF readers do."""
        ds, where, shape = node.ds, node.where, node.shape
        if len(lengths) == len(shape) and lengths != shape:
            shape = tuple(max(n, m) for n, m in zip(shape, lengths, strict=True))
        size = int(np.prod(shape, dtype=object))
        if size > VLEN_STRING_LIMIT:
            raise self._error(
                where,
                f"holds {size} variable-length strings (more than "
                f"{VLEN_STRING_LIMIT} are not decoded at open)",
                "Read it with h5py.",
            )
        import numcodecs

        try:
            raw = ds.asstr(errors="surrogateescape")[()]
        except OSError as exc:
            raw = self._vlen_strings_by_chunk(ds, where, exc)
        values = np.asarray(raw, dtype=object)
        if values.shape != shape:
            padded = np.full(shape, vlen_fill(ds), dtype=object)
            padded[tuple(slice(0, n) for n in values.shape)] = values
            values = padded
        values = np.array(
            [
                v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                for v in values.ravel().tolist()
            ],
            dtype=object,
        ).reshape(shape)
        dtype: np.dtype[Any] = np.dtypes.StringDType()
        data = bytes(numcodecs.VLenUTF8().encode(values.ravel())) if size else b""
        plan = _Plan(
            codecs=({"name": "vlen-utf8"},), v2_filters=({"id": "vlen-utf8"},), v2_compressor=None
        )
        self._add_whole(replace(node, shape=shape, dtype=dtype, fill=""), data, plan)

    def _vlen_strings_by_chunk(
        self, ds: h5py.Dataset, where: str, exc: OSError
    ) -> np.ndarray[Any, np.dtype[Any]]:
        """Variable-length strings read one allocated chunk at a time, the rest the fill.

        HDF5 2.0 cannot read the fill value of unwritten variable-length chunks from a file
        opened read-only ("no write intent on file"), so a whole-dataset read of a partly
        written netCDF string variable fails while each written chunk reads.
        """
        out = np.full(ds.shape, vlen_fill(ds), dtype=object)
        try:
            if ds.chunks is None:
                raise exc
            infos: list[Any] = []
            ds.id.chunk_iter(infos.append)
            strings = ds.asstr(errors="surrogateescape")
            for info in infos:
                sel = tuple(
                    slice(o, min(o + c, n))
                    for o, c, n in zip(info.chunk_offset, ds.chunks, ds.shape, strict=True)
                )
                out[sel] = strings[sel]
        except OSError as exc2:
            raise self._error(
                where, f"holds variable-length strings that HDF5 cannot read ({exc2})"
            ) from exc2
        return out

    def _add_whole(self, node: _Node, data: bytes, plan: _Plan | None = None) -> None:
        """A dataset read at open, served as one inline chunk (``data`` empty: nothing stored)."""
        chunks = tuple(max(1, s) for s in node.shape)
        inline = {0: data} if data else {}
        self._add(node, chunks, plan or _plain_plan(node.dtype), inline=inline)


def build_index(
    f: h5py.File,
    *,
    url: str,
    zarr_format: int = 3,
    unsupported: Unsupported = "raise",
    follow_external_links: bool = False,
    open_external: OpenExternal | None = None,
) -> FileIndex:
    """Index an open HDF5 file as a Zarr hierarchy.

    Parameters
    ----------
    f
        The open file (read-only).
    url
        Path of the file on the target filesystem; chunk tables refer to it.
    zarr_format
        2 or 3: which metadata keys to render.
    unsupported
        What to do with a dataset b2store cannot present: ``"raise"``, ``"warn"`` or ``"skip"``.
    follow_external_links
        Whether to index the targets of external links.
    open_external
        ``(url, link_filename) -> (h5py.File, target_url)``: opens an external link's file.

    Returns
    -------
    FileIndex

    Raises
    ------
    UnsupportedHDF5FeatureError
        With ``unsupported="raise"``, for the first dataset b2store cannot present.
    """
    walker = _Walker(
        url=url,
        zarr_format=zarr_format,
        unsupported=unsupported,
        follow_external_links=follow_external_links,
        open_external=open_external,
    )
    walker.walk(f["/"], "", url, frozenset())
    walker.walk_aliases()
    nodes = walker.nodes
    tables = walker.tables
    reconcile_dimensions(nodes, walker.dimension_lengths, walker.notes)
    notes = tuple(walker.notes)
    meta = render_v3(nodes) if zarr_format == 3 else render_v2(nodes)
    return FileIndex(
        zarr_format=zarr_format,
        meta=meta,
        tables=tables,
        notes=notes,
        warnings=tuple(walker.warnings),
        xarray_hints=walker.hints,
    )
