"""What ``convert`` keeps as it is: attributes, links, named types and unconverted datasets.

Contract: attributes are copied with their HDF5 file types, byte for byte where possible (netCDF-C
strings keep their last byte), and the ones that cannot be copied are named, never dropped
silently (:func:`_keep_attrs`); :func:`_walk` lists every link once, parents first, in each
group's own (creation) order; soft, external and further hard links are recreated, and external
links and virtual-dataset sources are renamed for the output's folder (:func:`_relocator`);
variable-length datasets are copied by value and virtual datasets with their mappings.
:func:`_convertible` says why a dataset is copied rather than converted. h5py is imported where
used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from b2store._h5compat import vlen_as_stored
from b2store.convert._options import B2ND_MAX_DIM, ConvertOptions

_REF_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}


def _skip_attrs(ds: Any) -> set[str]:
    """Attributes recreated by ``h5py.dims`` instead of copied (CLASS/NAME only on scales:
    PyTables and others use CLASS for their own purposes)."""
    import h5py

    return _REF_ATTRS | ({"CLASS", "NAME"} if h5py.h5ds.is_scale(ds.id) else set())


def _copy_attrs(src: Any, dst: Any, skip: set[str]) -> list[str]:
    """Copy attributes with their HDF5 types; returns the names it could not copy."""
    import h5py

    failed = []
    for name in src.attrs:
        if name in skip:
            continue
        try:
            aid = src.attrs.get_id(name)
            tid = aid.get_type()  # the file type: string padding and character set included
            if tid.committed():  # a named type lives in the source file: an anonymous copy
                tid = tid.copy()
            try:
                value = src.attrs[name]
            except (TypeError, ValueError):  # no numpy dtype (a 128-bit float): its bytes
                if _copy_attr_bytes(aid, tid, dst, name):
                    continue
                raise
            if aid.dtype.kind == "O" and h5py.check_ref_dtype(aid.dtype) is not None:
                failed.append(name)  # object references point into the source file
                continue
            if not isinstance(value, h5py.Empty) and _copy_attr_bytes(aid, tid, dst, name):
                continue
            value = vlen_as_stored(value, aid.dtype)
            dst.attrs.create(name, value, dtype=h5py.Datatype(tid))
        except Exception:
            try:
                dst.attrs[name] = src.attrs[name]
            except Exception:
                failed.append(name)
    return failed


def _copy_attr_bytes(aid: Any, tid: Any, dst: Any, name: str) -> bool:
    """Copy attribute ``aid`` to ``dst`` byte for byte in its file type ``tid`` (no conversion);
    False for types whose items hold pointers (variable-length data, references).

    Converting through numpy changes values: netCDF-C writes NULLTERM strings with no room for
    the NUL ("units" in 5 bytes), which HDF5 cuts to make room for one when it converts numpy's
    NULLPAD bytes to that type ('level' came out 'leve', '0' came out '')."""
    import h5py

    try:
        if aid.dtype.hasobject or aid.dtype.itemsize != tid.get_size():
            return False
    except (TypeError, ValueError):  # no numpy dtype: judged by the HDF5 type alone
        if any(tid.detect_class(c) for c in (h5py.h5t.VLEN, h5py.h5t.REFERENCE)) or (
            tid.get_class() == h5py.h5t.STRING and tid.is_variable_str()
        ):
            return False
    space = aid.get_space()
    raw = np.empty(aid.shape or (), dtype=f"V{tid.get_size()}")
    aid.read(raw, mtype=tid)
    key = name.encode()
    if h5py.h5a.exists(dst.id, key):
        h5py.h5a.delete(dst.id, key)
    h5py.h5a.create(dst.id, key, tid, space).write(raw, mtype=tid)
    return True


def _copy_named_type(fin: Any, obj: Any, fout: Any, name: str) -> None:
    """Copy a committed (named) datatype, e.g. a netCDF-4 compound, enum or vlen user type:
    netCDF-C finds a variable's type name among them (else it reads ``_AnonymousCompound1``)."""
    parent = fout.require_group(obj.parent.name)
    fin.copy(obj, parent, name=name.rsplit("/", 1)[-1])


def _keep_attrs(src: Any, dst: Any, skip: set[str], say: Callable[[str], None]) -> None:
    """:func:`_copy_attrs`, naming the attributes left out (none is dropped silently)."""
    failed = _copy_attrs(src, dst, skip)
    if failed:
        say(
            f"{src.name}: attributes {', '.join(failed)} not copied (HDF5 references point into "
            "the input file, or the type cannot be written)"
        )


def _tracks_order(obj: Any) -> bool:
    """Whether a group or dataset tracks the creation order of its links or attributes (netCDF-4
    files do: netCDF-C lists variables, types and attributes in that order)."""
    import h5py

    plist = obj.id.get_create_plist()
    flags = plist.get_attr_creation_order()
    if isinstance(obj, h5py.Group):
        flags |= plist.get_link_creation_order()
    return bool(flags & h5py.h5p.CRT_ORDER_TRACKED)


def _walk(fin: Any) -> list[tuple[str, Any]]:
    """Every link reached from the root, parents first, in each group's own order (creation order
    where the group tracks it: ``visit`` would sort by name, and the output would list netCDF-4
    variables alphabetically). Each item is ``(path without the leading "/", link)``: ``link``
    is ``None`` for the first hard link to an object, the first path (``"/a/b"``) for a further
    hard link to it, else the ``h5py.SoftLink`` or ``h5py.ExternalLink``."""
    import h5py

    seen: dict[Any, str] = {fin["/"].id: "/"}
    out: list[tuple[str, Any]] = []
    # an explicit stack, not recursion: files nest groups deeper than Python's recursion limit
    stack: list[tuple[Any, str, Any]] = [(fin["/"], "", iter(fin["/"]))]
    while stack:
        group, prefix, keys = stack[-1]
        key = next(keys, None)  # h5py lists tracked groups in creation order
        if key is None:
            stack.pop()
            continue
        path, link = prefix + key, group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            out.append((path, link))
            continue
        obj = group.get(key)
        if obj is None:
            continue
        if obj.id in seen:
            out.append((path, seen[obj.id]))
            continue
        seen[obj.id] = "/" + path
        out.append((path, None))
        if isinstance(obj, h5py.Group):
            stack.append((obj, path + "/", iter(list(obj))))
    return out


def _relocator(src: str, dst: str) -> Callable[[str], str]:
    """Map a file name that ``src`` refers to (external link, virtual dataset source) to the
    name ``dst`` must use: relative names are resolved from the file's own folder, so they are
    rewritten when ``dst`` lies in another folder ("." and absolute names are kept)."""
    src_path = os.path.realpath(src)  # the OS resolves ".." through the real folders
    src_dir = os.path.dirname(src_path)
    dst_dir = os.path.dirname(os.path.realpath(dst))

    def moved(filename: str) -> str:
        if filename == "." or os.path.isabs(filename):
            return filename
        target = os.path.realpath(os.path.join(src_dir, filename))
        if target == src_path:
            return "."  # the input naming itself (C tools write its base name): the output
        if src_dir == dst_dir:
            return filename
        return os.path.relpath(target, dst_dir)

    return moved


def _copy_virtual(ds: Any, parent: Any, name: str, moved: Callable[[str], str]) -> bool:
    """Recreate a virtual dataset with the same mappings, its source file names rewritten by
    ``moved`` (an object copy keeps relative names, which then miss their sources when the
    output is in another folder, and HDF5 silently serves the fill value). False when HDF5
    refuses the mappings (the caller then copies the dataset as it is)."""
    try:
        _create_virtual(ds, parent, name, moved)
    except (ValueError, TypeError, RuntimeError, OSError):
        return False
    return True


def _create_virtual(ds: Any, parent: Any, name: str, moved: Callable[[str], str]) -> None:
    """The work of :func:`_copy_virtual`."""
    import h5py

    from b2store.convert._hdf5 import recorded_fill

    dcpl = ds.id.get_create_plist()
    new = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    new.set_fill_value(np.array(recorded_fill(ds), dtype=ds.dtype))
    for i in range(dcpl.get_virtual_count()):
        vspace = dcpl.get_virtual_vspace(i)
        new.set_virtual(
            vspace,
            moved(dcpl.get_virtual_filename(i)).encode(),
            dcpl.get_virtual_dsetname(i).encode(),
            _source_space(dcpl.get_virtual_srcspace(i), vspace),
        )
    h5py.h5d.create(parent.id, name.encode(), ds.id.get_type(), ds.id.get_space(), dcpl=new)


def _source_space(src_space: Any, vspace: Any) -> Any:
    """The source dataspace of a mapping, ready for ``set_virtual``: HDF5 gives a "whole source"
    selection back as a scalar space, which no longer matches the mapped block's size."""
    import h5py

    if src_space.get_select_type() != h5py.h5s.SEL_ALL:
        return src_space
    lo, hi = vspace.get_select_bounds()
    shape = tuple(int(b) - int(a) + 1 for a, b in zip(lo, hi, strict=True))
    if int(np.prod(shape)) != vspace.get_select_npoints():
        shape = (int(vspace.get_select_npoints()),)
    return h5py.h5s.create_simple(shape)


def _copy_link(
    fout: Any, name: str, link: Any, say: Callable[[str], None], moved: Callable[[str], str]
) -> None:
    """Recreate a soft, external or further hard link (``link`` as :func:`_walk` gives it)."""
    import h5py

    if fout.get(name, getlink=True) is not None:
        return
    if isinstance(link, h5py.SoftLink):
        fout[name] = h5py.SoftLink(link.path)
    elif isinstance(link, h5py.ExternalLink):
        fout[name] = h5py.ExternalLink(moved(link.filename), link.path)
    elif link in fout:
        fout[name] = fout[link]
    else:
        say(f"/{name}: hard link to {link}, which was not copied; left out")
        return
    say(f"/{name}: link recreated")


def _has_refs(dtype: np.dtype[Any]) -> bool:
    """HDF5 references anywhere in ``dtype`` (also inside compound fields and array types)."""
    import h5py

    if h5py.check_ref_dtype(dtype) is not None:
        return True
    if dtype.fields:
        return any(_has_refs(f[0]) for f in dtype.fields.values())
    return dtype.subdtype is not None and _has_refs(dtype.subdtype[0])


def _is_vlen(ds: Any) -> bool:
    """A variable-length (string or sequence) dataset without references."""
    import h5py

    from b2store.convert._hdf5 import numpy_dtype

    if ds.shape is None or isinstance(numpy_dtype(ds), str) or _has_refs(ds.dtype):
        return False
    return bool(ds.dtype.hasobject or h5py.check_vlen_dtype(ds.dtype) is not None)


def _copy_by_value(ds: Any, parent: Any, name: str) -> None:
    """Copy a variable-length dataset by reading and writing its values: HDF5's object copy
    (``Group.copy``) leaves the heap object of its fill value behind, and the output then fails
    to open (netCDF-4 string variables: "bad global heap collection signature")."""
    kw: dict[str, Any] = {}
    if ds.chunks:
        kw.update(chunks=ds.chunks, maxshape=ds.maxshape)
        if ds.compression in ("gzip", "lzf"):
            kw.update(compression=ds.compression, compression_opts=ds.compression_opts)
        kw.update(shuffle=bool(ds.shuffle), fletcher32=bool(ds.fletcher32))
    out = parent.create_dataset(
        name, shape=ds.shape, dtype=ds.dtype, track_order=_tracks_order(ds), **kw
    )
    if ds.size:  # read_direct: h5py returns equal-length sequences as a 2-D array otherwise
        buf = np.empty(ds.shape, dtype=ds.dtype)
        ds.read_direct(buf)
        out.write_direct(vlen_as_stored(buf, ds.dtype))


def _convertible(ds: Any, options: ConvertOptions) -> str:
    """'' if ``ds`` is converted, else why it is copied as is."""
    import h5py

    from b2store.convert._hdf5 import numpy_dtype

    dtype = numpy_dtype(ds)
    if isinstance(dtype, str):  # copied by HDF5 itself, in its own type
        return dtype
    if ds.shape is None or ds.ndim == 0:
        return "scalar or NULL dataspace"
    if ds.size == 0:
        return "empty"
    if _has_refs(ds.dtype):
        return "reference dtype: its references are not rewritten and point nowhere in the output"
    if ds.dtype.hasobject or h5py.check_vlen_dtype(ds.dtype) is not None:
        return "variable-length dtype"
    if ds.dtype.fields is not None or ds.dtype.kind not in "biufc" or ds.dtype.subdtype:
        return f"{ds.dtype} is not a numeric dtype"
    if ds.ndim > B2ND_MAX_DIM:
        return f"{ds.ndim} dimensions: b2nd arrays have at most {B2ND_MAX_DIM}"
    if ds.is_virtual:
        return "virtual dataset"
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        return "external raw data"
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CHUNKED:
        return ""
    if layout == h5py.h5d.CONTIGUOUS and options.contiguous:
        return ""
    return (
        "contiguous (pass --contiguous to convert)"
        if layout == h5py.h5d.CONTIGUOUS
        else ("compact")
    )
