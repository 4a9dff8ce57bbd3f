"""Export an HDF5 file's chunk references in the kerchunk/fsspec reference format (version 1).

Contract: :func:`hdf5_refs` builds the Zarr v2 view of an HDF5 file with b2store's own index
(:class:`b2store.hdf5.filesystem.HDF5FileSystem` with ``zarr_format=2``) and returns
``{"version": 1, "refs": {...}}`` where

* every metadata key (``.zgroup``, ``.zarray``, ``.zattrs``, ``.zmetadata``) is inline JSON; the
  codec configs name b2store's numcodecs codecs (``b2store_b2nd``, ``b2store_hdf5``, …), which
  numcodecs finds through entry points in any process where b2store is installed;
* every allocated chunk is ``[url, offset, size]`` into the file that holds it: the HDF5 file,
  or the source file of a virtual dataset, or (``follow_external_links=True``) the file an
  external link reaches; ``url=`` rewrites the location of the main file only, the others are
  written as absolute paths (local files) or full URLs;
* chunks whose bytes b2store transforms before decoding (per-chunk filter masks, zero-padded edge
  chunks of contiguous data), compact/vlen data, encoded fill chunks and chunks smaller than
  ``inline_threshold`` are inlined (``"base64:…"``);
* unallocated chunks, and small all-zero Blosc2 chunks of datasets whose fill value is 0, are
  absent (zarr fills them); so are those of float datasets whose HDF5 fill is NaN, which becomes
  their ``fill_value`` (NaN masks nothing). Other non-zero fills are inline fill chunks, and a
  dataset whose fill chunks would exceed :data:`MAX_FILL_TEXT` is refused (:class:`RefsError`).

Links left out (external links not followed, links that do not resolve) are named in one
``UserWarning``. So ``fsspec.filesystem("reference", fo=refs)`` plus zarr (``zarr_format=2``)
reads exactly what h5py reads. :func:`write_refs` writes JSON, or fsspec's parquet reference
layout when the output name ends in ``.parq``/``.parquet`` (large files; written with pandas +
pyarrow, with kerchunk's column types). fsspec reads a parquet reference folder with fastparquet
by default;
to read it with pyarrow use :func:`open_parquet_refs`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from b2store._atomic import part_path
from b2store.errors import B2StoreError

__all__ = ["RefsError", "hdf5_refs", "open_parquet_refs", "write_refs"]


class RefsError(B2StoreError, ValueError):
    """The input cannot be exported (not HDF5, bad options)."""


#: Bytes stored as plain JSON text: printable ASCII and whitespace. Anything else (zeros, say:
#: JSON escapes them as \u0000, six bytes each) is base64.
_TEXT_BYTES = bytes(range(32, 127)) + b"\t\n\r"


def _encode(data: bytes) -> str:
    if data.translate(None, _TEXT_BYTES) or data.startswith(b"base64:"):
        return "base64:" + base64.b64encode(data).decode("ascii")
    return data.decode("ascii")  # metadata JSON, short text


def hdf5_refs(
    src: str | os.PathLike[str],
    *,
    inline_threshold: int = 500,
    url: str | None = None,
    unsupported: str = "raise",
    follow_external_links: bool = False,
) -> dict[str, Any]:
    """Reference set (version 1) of an HDF5 file.

    Parameters
    ----------
    src : path or URL
        The HDF5 file (any fsspec URL the ``b2h5`` filesystem accepts).
    inline_threshold : int
        Chunks smaller than this many bytes are inlined.
    url : str, optional
        The file location written into the references (default: ``src`` as an absolute path).
    unsupported : {"raise", "warn", "skip"}
        Passed to the HDF5 filesystem.
    follow_external_links : bool
        Also export the datasets external links reach (their chunks point into the linked
        files, resolved beside ``src``). Links left out (external ones not followed, links that
        do not resolve) are named in one ``UserWarning``.

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    UnsupportedHDF5FeatureError
        If a dataset cannot be presented (with ``unsupported="raise"``).
    """
    from b2store.hdf5.filesystem import HDF5FileSystem

    src = os.fspath(src)
    if not src:  # "" read as "no such file" with an empty name: ": no such file"
        raise RefsError("Expected an input HDF5 file name or URL, such as scan.h5. Got '' instead.")
    if "://" not in src:
        if not os.path.isfile(src):
            raise FileNotFoundError(f"{src}: no such file")
        import h5py

        if not h5py.is_hdf5(src):
            raise RefsError(f"{src} is not an HDF5 file (no HDF5 signature)")
    if inline_threshold < 0:
        raise RefsError(
            f"Expected a non-negative inline_threshold. Got {inline_threshold} instead."
        )
    fs = HDF5FileSystem(
        fo=src,
        # a local file's name is no URL: "a::b.h5" was split as a chained URL (HDF5 file not
        # found: a)
        target_protocol=None if "://" in src else "file",
        zarr_format=2,
        unsupported=unsupported,  # type: ignore[arg-type]
        follow_external_links=follow_external_links,
    )
    index = fs.index
    _warn_links_left_out(src, fs.url, fs.notes)
    refs: dict[str, Any] = {}
    for key, data in index.meta.items():
        refs[key] = data.decode("utf-8")
    main_url = fs.url
    protocols = fs.target_fs.protocol
    protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
    local = "file" in protocols or "local" in protocols

    def file_url(table_url: str) -> str:
        if url is not None and table_url == main_url:
            return url
        if local:
            return os.path.abspath(table_url)
        return str(fs.target_fs.unstrip_protocol(table_url))  # keep s3://, http://…

    for path, table in index.tables.items():
        urls = {u: file_url(u) for u in (table.url, *table.urls)}
        grid = table.grid

        def key_of(lin: int, path: str = path, grid: tuple[int, ...] = grid) -> str:
            if not grid:
                return f"{path}/0" if path else "0"
            coords = np.unravel_index(lin, grid)
            name = ".".join(str(int(c)) for c in coords)
            return f"{path}/{name}" if path else name

        for row in range(table.lin.size):
            lin = int(table.lin[row])
            key = key_of(lin)
            size = int(table.sizes[row])
            # b2h5 transforms these bytes before decoding: a chunk framed with its filter mask,
            # or a short edge chunk of contiguous data zero-padded (full ones are references)
            transformed = table.masked or size < table.pad_to
            if transformed or size < inline_threshold:
                try:
                    refs[key] = _encode(fs.cat_file(key))
                except FileNotFoundError:
                    continue  # an all-zero Blosc2 chunk the filesystem serves as missing (fill 0)
            else:  # a virtual dataset's rows lie in the files of its sources
                refs[key] = [urls[table.url_of(row)], int(table.offsets[row]), size]
        for lin, data in table.inline.items():
            refs[key_of(int(lin))] = _encode(data)
        if table.fill_chunk is not None and not _nan_fill_value(refs, path, table.fill_chunk):
            allocated = set(int(x) for x in table.lin) | set(int(x) for x in table.inline)
            fill = _encode(table.fill_chunk)
            missing = table.nchunks - len(allocated)
            if missing * len(fill) > MAX_FILL_TEXT:
                raise RefsError(
                    f"{src}:/{path}: has {missing} unallocated chunks with a non-zero fill value, "
                    f"each inlined as {len(fill)} bytes ({missing * len(fill) / 2**30:.1f} GiB of "
                    f"references). Expected at most {MAX_FILL_TEXT / 2**30:g} GiB. Read the file "
                    "through the b2h5 filesystem instead (it serves fill chunks without storing "
                    "them), or write the dataset with a compression filter (its fill chunk is "
                    "then a few bytes)"
                )
            for lin in range(table.nchunks):
                if lin not in allocated:
                    refs[key_of(lin)] = fill
    return {"version": 1, "refs": refs}


#: The most text the inline fill chunks of one dataset may take in the references: a sparse
#: (20000, 20000) float32 dataset with (100, 100) chunks, one HDF5 file of a few kB, otherwise
#: needs 2 GiB of JSON.
MAX_FILL_TEXT = 2**30


def _nan_fill_value(refs: dict[str, Any], path: str, fill_chunk: bytes) -> bool:
    """Publish a NaN fill value in ``.zarray`` (and ``.zmetadata``) instead of a fill chunk.

    The v2 view serves an encoded chunk full of the HDF5 fill for every unallocated chunk, as
    its ``fill_value`` stays ``null`` (xarray masks values equal to a v2 ``fill_value``). A
    NaN fill masks nothing (NaN stays NaN), so zarr can fill those chunks itself: a sparse
    float dataset with the common NaN fill no longer inlines one fill chunk per unallocated
    chunk (21 MB of JSON for a 44 kB file, growing with the chunk grid). Returns whether done
    (float data whose fill chunk decodes to NaN, ``fill_value`` null and no ``_FillValue``
    attribute). zarr fills with the canonical NaN, whatever NaN payload HDF5 stored (h5py's
    NaN fill of ``>f4`` data reads as 0x7fffffff): equal as values, not as bits.
    """
    import numcodecs

    prefix = f"{path}/" if path else ""
    zarray = json.loads(refs[prefix + ".zarray"])
    attrs = json.loads(refs.get(prefix + ".zattrs", "{}"))
    dtype = np.dtype(zarray["dtype"]) if isinstance(zarray["dtype"], str) else None
    if (
        dtype is None
        or dtype.kind != "f"
        or zarray["fill_value"] is not None
        or "_FillValue" in attrs
    ):
        return False
    try:
        buf: Any = fill_chunk
        if zarray["compressor"] is not None:
            buf = numcodecs.get_codec(dict(zarray["compressor"])).decode(buf)
        for cfg in reversed(zarray["filters"] or ()):
            buf = numcodecs.get_codec(dict(cfg)).decode(buf)
        got = np.frombuffer(np.ascontiguousarray(buf).tobytes(), dtype)
    except Exception:  # keep the fill chunk: it reads right whatever this could not decode
        return False
    if got.size != int(np.prod(zarray["chunks"], dtype=np.int64)) or not np.isnan(got).all():
        return False
    zarray["fill_value"] = "NaN"
    refs[prefix + ".zarray"] = json.dumps(zarray)
    root = json.loads(refs[".zmetadata"])
    root["metadata"][prefix + ".zarray"] = zarray
    refs[".zmetadata"] = json.dumps(root)
    return True


def _warn_links_left_out(src: str, url: str, notes: Sequence[str]) -> None:
    """One ``UserWarning`` naming the links whose targets are not in the references: the
    references of the Diamond k11 NeXus master had none of its 40 external links (its
    projections among them) and said nothing."""
    from b2store.hdf5._target_errors import _scrub
    from b2store.hdf5.index import LINK_LEFT_OUT_NOTES, NOT_FOLLOWED_NOTE

    prefix = f"{_scrub(url)}:"  # notes show no credentials
    left = [
        n[len(prefix) :] if n.startswith(prefix) else n
        for n in notes
        # the node's path ends in ": ", then the note (a virtual dataset's unresolved source
        # is no link left out)
        if any(f": {start}" in n for start in LINK_LEFT_OUT_NOTES)
    ]
    if not left:
        return
    unfollowed = sum(n.endswith(NOT_FOLLOWED_NOTE) for n in left)
    first = left[0].removesuffix(NOT_FOLLOWED_NOTE)
    msg = (
        f"{src}: {len(left)} link{'s' if len(left) > 1 else ''} left out of the references "
        f"(first: {first})"
    )
    if unfollowed:
        msg += (
            f"; {unfollowed} of them external: pass follow_external_links=True to export what "
            "they reach"
        )
    warnings.warn(msg, UserWarning, stacklevel=3)


def write_refs(
    src: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    inline_threshold: int = 500,
    record_size: int = 10_000,
    url: str | None = None,
    unsupported: str = "raise",
    follow_external_links: bool = False,
) -> int:
    """Write the references of ``src`` to ``output`` (JSON, or parquet for ``.parq``).

    ``url`` is the location of ``src`` written into the references (see :func:`hdf5_refs`),
    e.g. ``https://server/data/scan.h5`` for references read where the file is served. Returns
    the number of references written.
    """
    output = os.fspath(output)
    if not output:  # the temporary file went to the folder above, then the rename failed
        raise RefsError("Expected an output name, such as refs.json or refs.parq. Got '' instead.")
    trimmed = output.rstrip("/" + os.sep)
    if trimmed and trimmed != output:  # "refs.parq/": the shell's completion of a folder
        if not trimmed.endswith((".parq", ".parquet")):
            raise RefsError(
                f"{output}: names a folder; give the JSON output a file name (or a folder name "
                "ending in .parq for parquet references)"
            )
        output = trimmed
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"{out_dir}: the output folder does not exist")
    parquet = output.endswith((".parq", ".parquet"))
    if parquet and ("{" in os.path.abspath(output) or "}" in os.path.abspath(output)):
        raise RefsError(
            f"{output}: fsspec's parquet reference reader takes braces in the folder's path for "
            "a template and then reads every chunk as missing (fill values). Expected a path "
            "without '{' or '}'; choose another folder, or write JSON references (a name not "
            "ending in .parq)"
        )
    if os.path.exists(output):
        local_src = os.fspath(src)
        if os.path.exists(local_src) and os.path.samefile(local_src, output):
            raise RefsError(f"{output}: the output would overwrite the source; choose another name")
        if parquet and not _is_parquet_refs(output):
            raise RefsError(
                f"{output}: exists and is not a parquet reference folder; remove it or choose "
                "another name"
            )
        if not parquet and os.path.isdir(output):
            raise RefsError(f"{output}: is a folder; give the JSON output a file name")
    refs = hdf5_refs(
        src,
        inline_threshold=inline_threshold,
        url=url,
        unsupported=unsupported,
        follow_external_links=follow_external_links,
    )
    try:
        if parquet:
            _write_parquet(refs["refs"], output, record_size)
        else:
            with part_path(out_dir, os.path.basename(output)) as tmp:
                with open(tmp, "w") as f:
                    json.dump(refs, f, separators=(",", ":"))
                os.replace(tmp, output)
    except OSError as exc:
        from b2store._diskspace import out_of_room

        room = out_of_room(
            exc, f"{output} (in {out_dir})", "free some space or write to another folder"
        )
        if room is None:
            raise
        raise room from exc
    return len(refs["refs"])


def _is_parquet_refs(folder: str) -> bool:
    """Whether ``folder`` holds fsspec parquet references (its ``.zmetadata`` names a
    ``record_size``), not, say, a consolidated Zarr store that replacing it would destroy."""
    try:
        with open(os.path.join(folder, ".zmetadata"), "rb") as f:
            meta = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "record_size" in meta


def _write_parquet(refs: dict[str, Any], output: str, record_size: int) -> None:
    import fsspec

    try:
        import kerchunk.df  # noqa: F401  (fsspec's parquet writer imports it)
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise B2StoreError(
            "parquet references need pandas, pyarrow and kerchunk (fsspec's parquet writer "
            "uses it): pip install 'b2store[refs]'"
        ) from exc
    from fsspec.implementations.reference import LazyReferenceMapper

    meta = {k for k in refs if k.rsplit("/", 1)[-1].startswith(".")}
    clash = sorted(
        k.rsplit("/", 1)[0] for k in refs if k not in meta and LazyReferenceMapper._is_meta(k)
    )
    if clash:  # fsspec would parse their chunks as JSON ("Expected object or value")
        raise RefsError(
            f"{clash[0]}: fsspec's parquet reference layout takes every path with a part starting "
            "'.z' for Zarr metadata, so this dataset's chunks cannot be stored in it; write JSON "
            "references (an output name not ending in .parq) instead"
        )
    fs = fsspec.filesystem("file")
    # written into a temporary folder beside ``output`` and moved into place when complete: an
    # interrupted run (Ctrl-C, a full disk) neither destroys an earlier output nor leaves a
    # folder whose empty .zmetadata reads as "no group found"
    parent = os.path.dirname(os.path.abspath(output))
    with part_path(parent, os.path.basename(output), directory=True) as tmp:
        _fill_parquet(fs, tmp, refs, record_size)
        old = None
        if os.path.exists(output):  # a parquet reference folder (write_refs checked)
            old = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(output) + ".old.")
            os.replace(output, os.path.join(old, "refs"))
        try:
            os.replace(tmp, output)
        except BaseException:
            if old is not None:
                os.replace(os.path.join(old, "refs"), output)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def _fill_parquet(fs: Any, root: str, refs: dict[str, Any], record_size: int) -> None:
    from fsspec.implementations.reference import LazyReferenceMapper

    out = LazyReferenceMapper.create(root=root, fs=fs, record_size=record_size, engine="pyarrow")
    meta_keys = {k for k in refs if k.rsplit("/", 1)[-1].startswith(".")}
    for k in sorted(meta_keys):
        if not k.endswith(".zmetadata"):  # the mapper writes its own consolidated root key
            out[k] = refs[k]
    for k, v in refs.items():
        if k in meta_keys:
            continue
        if isinstance(v, str):
            out[k] = base64.b64decode(v[7:]) if v.startswith("base64:") else v.encode()
        else:
            out[k] = v
    out.flush()
    for record in sorted(Path(root).rglob("refs.*.parq")):
        _with_fixed_schema(record)


#: The columns of a reference record as kerchunk writes them (fastparquet with
#: ``object_encoding={"raw": "bytes", "path": "utf8"}``, ``has_nulls=["path", "raw"]``):
#: (name, pyarrow type, whether it may hold nulls).
_RECORD_COLUMNS = (
    ("path", "string", True),
    ("offset", "int64", False),
    ("size", "int64", False),
    ("raw", "binary", True),
)


def _with_fixed_schema(record: Path) -> None:
    """Rewrite one record file with the column types of :data:`_RECORD_COLUMNS`.

    fsspec's pyarrow writer lets pyarrow infer them: a record whose chunks are all inline
    gets a ``null``-typed ``path`` column, one with no inline chunk a ``null``-typed ``raw``,
    many references to one file a categorical ``path``, and every column is nullable.
    fastparquet (the engine fsspec's ``ReferenceFileSystem`` reads with by default) gives
    ``NaN`` for a null column, which fsspec takes for a reference ("object of type
    'numpy.float64' has no len()") instead of a missing chunk, and float offsets for a
    nullable integer column. With these types both engines read every chunk.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(record)
    fields, columns = [], []
    for name, kind, nullable in _RECORD_COLUMNS:
        column = table.column(name)  # a categorical path casts to its strings
        fields.append(pa.field(name, getattr(pa, kind)(), nullable=nullable))
        columns.append(column.cast(fields[-1].type))
    fixed = pa.Table.from_arrays(columns, schema=pa.schema(fields))
    pq.write_table(fixed, record, compression="zstd")


def open_parquet_refs(folder: str | os.PathLike[str], **kwargs: Any) -> Any:
    """A ``ReferenceFileSystem`` over a parquet reference folder, read with pyarrow.

    ``kwargs`` go to :class:`fsspec.implementations.reference.ReferenceFileSystem`
    (e.g. ``remote_protocol``). Open it with zarr as
    ``zarr.open_group(FsspecStore(open_parquet_refs(folder, asynchronous=True), read_only=True),
    mode="r", zarr_format=2)`` (zarr cannot re-serialise a filesystem holding a parquet mapper, so
    ``fs.get_mapper()`` fails).
    """
    import fsspec
    from fsspec.implementations.reference import LazyReferenceMapper

    root = os.fspath(folder)
    mapper = LazyReferenceMapper(root, engine="pyarrow")
    # fsspec str.format()s the folder name into each record's path: braces in it ("run{1}")
    # made every record unreadable, and fsspec reads an unreadable record as missing chunks
    mapper.url = _braces_escaped(root) + "/{field}/refs.{record}.parq"
    mapper.setup()  # defines open_refs (fsspec does it on first use)
    mapper.open_refs = _none_for_missing(mapper.open_refs)
    kwargs.setdefault("remote_protocol", "file")  # else fsspec iterates every reference
    return fsspec.filesystem("reference", fo=mapper, **kwargs)


def _braces_escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _none_for_missing(open_refs: Any) -> Any:
    """Wrap ``LazyReferenceMapper.open_refs`` so that a missing path reads as ``None``.

    pandas 3 (string dtype) and categorical path columns give ``NaN`` for the unallocated chunks
    of a record; fsspec only treats ``None`` as "no such chunk" and fails on ``NaN`` ("argument
    of type 'float' is not iterable") instead of letting zarr use the fill value.
    """
    from functools import lru_cache

    @lru_cache(maxsize=128)
    def wrapped(field: str, record: int) -> Any:
        refs = open_refs(field, record)
        if refs and "path" in refs:
            refs = dict(refs)
            refs["path"] = np.array(
                [p if isinstance(p, str) else None for p in refs["path"]], dtype=object
            )
        return refs

    return wrapped
