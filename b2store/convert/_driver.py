"""The :func:`convert` driver: walk the input, copy or convert each dataset, write atomically.

Contract: see :mod:`b2store.convert`. This module orders the work; the rules live in the other
private modules (what is copied: ``_copy``; what stays exact: ``_exact``; chunk reading and
encoding: ``_chunks``; the tuner: ``_tune``). Every error raised while writing a dataset names it
(:func:`_naming`); a full disk is reported by :func:`b2store._diskspace.out_of_room`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from b2store._atomic import part_path
from b2store._diskspace import out_of_room
from b2store.convert._chunks import (
    _all_fill,
    _auto_chunks,
    _chunk_origins,
    _raw_decoder,
    _read_full_chunk,
    _transcode,
    _with_rechunk_cache,
    encode_chunk,
)
from b2store.convert._copy import (
    _convertible,
    _copy_by_value,
    _copy_link,
    _copy_named_type,
    _copy_virtual,
    _is_vlen,
    _keep_attrs,
    _relocator,
    _skip_attrs,
    _tracks_order,
    _walk,
)
from b2store.convert._exact import _exact_reason, _referenced_exact, _settle_lossy
from b2store.convert._hdf5 import ensure_blosc2_writable, open_input, recorded_fill
from b2store.convert._options import (
    ConvertError,
    ConvertOptions,
    ConvertReport,
    DatasetReport,
    _lossy,
)
from b2store.convert._progress import _bar
from b2store.convert._tune import _tuning_samples, tune


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> ConvertReport:
    """Rewrite ``src`` as ``dst`` with Blosc2 b2nd chunks (see the module docstring).

    Parameters
    ----------
    src, dst : path
        Input HDF5 file; output path (its folder must exist; an existing file is replaced only
        when the conversion succeeds).
    options : ConvertOptions
        Codec, tuning and chunking options.
    progress : bool
        Show a tqdm progress bar per dataset.
    log : callable, optional
        Receives one line per dataset (and the tuner's choice).
    on_chunk : callable, optional
        Called with ``(dataset path, chunk number)`` after each chunk is written (tests use it to
        interrupt a run).

    Raises
    ------
    FileNotFoundError
        If ``src`` or the destination folder does not exist.
    ConvertError
        Invalid options for a dataset, or ``src`` is not HDF5, or ``dst`` is ``src``.
    """
    import blosc2
    import h5py
    import hdf5plugin

    from b2store.hdf5.index import open_local_file

    options = options or ConvertOptions()
    src, dst = os.fspath(src), os.fspath(dst)
    if not src:  # "" read as "no such file" with an empty name: ": no such file"
        raise ConvertError("Expected an input HDF5 file name, such as in.h5. Got '' instead.")
    if not os.path.isfile(src):
        raise FileNotFoundError(f"{src}: no such file")
    if not h5py.is_hdf5(src):
        raise ConvertError(f"{src} is not an HDF5 file (no HDF5 signature)")
    if not dst or dst.endswith(("/", os.sep)) or os.path.basename(dst) in (".", ".."):
        # "" and "new/" converted the whole file, then failed to rename it (the temporary file
        # of "" even went to the folder above)
        raise ConvertError(f"Expected an output file name, such as out.h5. Got {dst!r} instead.")
    if os.path.isdir(dst):
        # converted everything, then failed to rename the result onto the folder
        raise ConvertError(
            f"Expected an output file name, such as out.h5. Got {dst!r} instead, which is a folder."
        )
    dst_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(dst_dir):
        raise FileNotFoundError(f"{dst_dir}: the destination folder does not exist")
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ConvertError(f"{dst} is the input file: choose another output path")

    say = log or (lambda _msg: None)
    blosc2.set_releasegil(True)
    ensure_blosc2_writable()
    t_start = time.perf_counter()
    reports: list[DatasetReport] = []
    with part_path(dst_dir, os.path.basename(dst)) as tmp:
        try:
            with (
                open_input(src, open_local_file) as fin,  # also while an SWMR writer appends
                h5py.File(tmp, "w", track_order=_tracks_order(fin["/"])) as fout,
                ThreadPoolExecutor(options.nthreads) as pool,
            ):
                _keep_attrs(fin, fout, set(), say)
                walked = _walk(fin)  # collect first; no writes inside h5py's traversal
                _check_chunks_rank(fin, walked, options, src)
                referenced = _referenced_exact(fin, walked) if _lossy(options.codec) else {}
                moved = _relocator(src, dst)
                scales: dict[str, Any] = {}
                attachments: list[tuple[str, int, str]] = []
                for name, link in walked:
                    if link is not None:  # links in place, so groups keep their order
                        _copy_link(fout, name, link, say, moved)
                        continue
                    obj = fin.get(name, getlink=False)
                    if isinstance(obj, h5py.Group):
                        g = fout.get(name) or fout.create_group(
                            name, track_order=_tracks_order(obj)
                        )
                        _keep_attrs(obj, g, set(), say)
                        continue
                    if isinstance(obj, h5py.Datatype):
                        _copy_named_type(fin, obj, fout, name)
                        continue
                    if not isinstance(obj, h5py.Dataset):
                        continue
                    if h5py.h5ds.is_scale(obj.id):  # NAME is optional (H5DSset_scale(id, NULL))
                        nm = obj.attrs.get("NAME")
                        scales[obj.name] = nm.decode() if isinstance(nm, bytes) else nm
                    if obj.ndim:
                        for axis in range(obj.ndim):
                            attachments.extend(
                                (obj.name, axis, sc.name)
                                for sc in obj.dims[axis].values()
                                if sc.name != obj.name
                            )
                    why = _convertible(obj, options)
                    if why:
                        parent, _, base = ("/" + name).rpartition("/")
                        if _is_vlen(obj):
                            _copy_by_value(obj, fout[parent or "/"], base)
                        elif obj.is_virtual and _copy_virtual(
                            obj, fout[parent or "/"], base, moved
                        ):
                            pass
                        else:
                            try:
                                fin.copy(obj, fout[parent or "/"], name=base, without_attrs=True)
                            except Exception as exc:
                                raise _naming(exc, obj.name) from exc
                        _keep_attrs(obj, fout[name], _skip_attrs(obj), say)
                        reports.append(
                            DatasetReport(
                                path=obj.name,
                                action="copied",
                                note=why,
                                nbytes=_nbytes(obj),
                            )
                        )
                        say(f"{obj.name}: copied ({why})")
                        continue
                    try:
                        rep = _convert_dataset(
                            obj,
                            fout,
                            options,
                            pool,
                            hdf5plugin,
                            progress,
                            say,
                            on_chunk,
                            exact=(
                                _exact_reason(obj, referenced.get("/" + name))
                                if _lossy(options.codec)
                                else None
                            ),
                        )
                    except Exception as exc:  # a corrupt chunk, a full disk: say which dataset
                        raise _naming(exc, "/" + name) from exc
                    obj = fin[name]  # _convert_dataset may have closed obj to reopen it
                    _keep_attrs(obj, fout[name], _skip_attrs(obj), say)
                    reports.append(rep)
                for path, nm in scales.items():
                    fout[path].make_scale("" if nm is None else str(nm))
                    if nm is None:  # make_scale always writes one: a scale without NAME had NAME ''
                        del fout[path].attrs["NAME"]
                for path, axis, scale in attachments:
                    if scale in fout and path in fout:
                        fout[path].dims[axis].attach_scale(fout[scale])
            os.replace(tmp, dst)
        except BaseException as exc:  # (part_path removes the partial output)
            room = out_of_room(
                exc,
                f"{dst} (in {dst_dir}). The partial output was removed",
                "free some space or write to another folder",
            )
            if room is not None:
                raise room from exc
            raise
    return ConvertReport(
        src=src, dst=dst, datasets=tuple(reports), seconds=time.perf_counter() - t_start
    )


def _check_chunks_rank(
    fin: Any, walked: list[tuple[str, Any]], options: ConvertOptions, src: str
) -> None:
    """Refuse a chunk shape (``--chunks``) of a rank no converted dataset has: it would rechunk
    nothing, silently (``--chunks 2,2,2`` on a file of 2-D datasets wrote their old chunks)."""
    import h5py

    if options.chunks is None:
        return
    ranks = set()
    for name, link in walked:
        obj = fin.get(name) if link is None else None
        if isinstance(obj, h5py.Dataset) and not _convertible(obj, options):
            ranks.add(obj.ndim)
    if ranks and len(options.chunks) not in ranks:

        def dims(n: int) -> str:
            return f"{n} dimension{'s' if n != 1 else ''}"

        *most, last = sorted(ranks)
        both = f"{', '.join(str(r) for r in most)} or {dims(last)}" if most else dims(last)
        raise ConvertError(
            f"Expected chunks of the rank of a dataset {src} converts ({both}). "
            f"Got {options.chunks} ({dims(len(options.chunks))}) instead."
        )


def _naming(exc: Exception, path: str) -> Exception:
    """``exc`` with ``path`` (the dataset being written) in front of its message, of the same
    type where it can be rebuilt from a message (an ``OSError`` keeps its errno)."""
    msg = str(exc)
    if msg.startswith(path):
        return exc
    msg = f"{path}: {msg or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:  # "[Errno N]" comes back in front
        text = f"{path}: {exc.strerror or type(exc).__name__}"
        if exc.filename is not None:
            text += f": {exc.filename!r}"
        return OSError(exc.errno, text)  # Python picks the subclass of the errno again
    try:
        new = type(exc)(msg)
    except Exception:
        return ConvertError(msg)
    return new if str(new) == msg else ConvertError(msg)


def _nbytes(ds: Any) -> int:
    """``ds.nbytes``; for a type numpy cannot represent (h5py has no dtype), its HDF5 size."""
    if not ds.shape:
        return 0
    try:
        return int(ds.nbytes)
    except (TypeError, ValueError):
        return int(ds.size) * int(ds.id.get_type().get_size())


def _fill_time(ds: Any) -> str | None:
    """The fill time of ``ds`` by h5py's name (``create_dataset(fill_time=...)``)."""
    import h5py

    names = {
        h5py.h5d.FILL_TIME_ALLOC: "alloc",
        h5py.h5d.FILL_TIME_NEVER: "never",
        h5py.h5d.FILL_TIME_IFSET: "ifset",
    }
    return names.get(ds.id.get_create_plist().get_fill_time())


def _convert_dataset(
    ds: Any,
    fout: Any,
    options: ConvertOptions,
    pool: ThreadPoolExecutor,
    hdf5plugin: Any,
    progress: bool,
    say: Callable[[str], None],
    on_chunk: Callable[[str, int], None] | None,
    exact: str | None = None,
) -> DatasetReport:
    """Write dataset ``ds`` into ``fout`` as Blosc2 b2nd chunks (one converted dataset of
    :func:`convert`; ``exact`` is why lossy options must not apply to it, or None).

    To rechunk, ``ds`` is closed and opened again with a larger chunk cache
    (:func:`_with_rechunk_cache`): the caller gets the dataset from its file again afterwards.
    """
    path = ds.name
    src_chunks = tuple(int(c) for c in ds.chunks) if ds.chunks else None
    if options.chunks is not None and len(options.chunks) == ds.ndim:
        chunks = tuple(min(c, max(s, 1)) for c, s in zip(options.chunks, ds.shape, strict=True))
    elif src_chunks is not None:
        chunks = src_chunks
    else:
        chunks = _auto_chunks(tuple(ds.shape), ds.dtype.itemsize)
    rechunked = chunks != src_chunks
    choice = options.codec
    if options.chunks is not None and len(options.chunks) != ds.ndim:
        say(f"{path}: --chunks {options.chunks} has another rank than {ds.shape}: chunks {chunks}")
    if choice.blocks is not None and len(choice.blocks) != ds.ndim:
        say(f"{path}: --blocks {choice.blocks} has another rank than {ds.shape}: blosc2 chooses")
        choice = replace(choice, blocks=None)
    choice = _settle_lossy(ds, choice, chunks, exact, say)
    fill = recorded_fill(ds)  # zero where the file leaves it undefined
    # HDF5 reads unallocated chunks as the fill value, or as zeros with fill time "never"
    # (whatever the fill value): the output keeps the fill time, so they read the same
    fill_time = _fill_time(ds)
    unallocated = 0 if fill_time == "never" else fill
    if rechunked:
        ds = _with_rechunk_cache(ds, chunks)
    origins = _chunk_origins(ds, chunks, rechunked)

    if options.auto and origins:
        samples = _tuning_samples(ds, origins, chunks, fill)
        res = tune(samples, tradeoff=options.tradeoff, base=choice)
        choice = res.choice
        say(
            f"{path}: --auto chose {choice.describe()} (sample ratio {res.ratio:.2f}, "
            f"tradeoff {options.tradeoff})"
        )

    kwargs: dict[str, Any] = dict(hdf5plugin.Blosc2(cname=choice.cname, clevel=choice.clevel))
    dset = fout.create_dataset(
        path,
        shape=ds.shape,
        dtype=ds.dtype,
        chunks=chunks,
        maxshape=ds.maxshape if ds.chunks else None,
        fillvalue=fill,
        fill_time=fill_time,
        track_order=_tracks_order(ds),
        **kwargs,
    )
    stored = 0
    bar = _bar(len(origins), path, progress)
    inflight: deque[tuple[tuple[int, ...], Future[bytes | None]]] = deque()
    raw_decode = None if rechunked else _raw_decoder(ds, chunks)
    # python-blosc2's encoder holds the GIL, so pool threads overlap reading, decoding and
    # writing while Blosc2's own threads compress the blocks of each chunk in parallel
    bt = 1 if choice.is_j2k else options.nthreads
    fast = 0

    def drain(limit: int) -> None:
        nonlocal stored
        while len(inflight) > limit:
            origin, fut = inflight.popleft()
            frame = fut.result()
            if frame is None:  # the raw decode failed: read this chunk through HDF5 instead
                frame = encode_chunk(
                    _read_full_chunk(ds, origin, chunks, fill), choice, nthreads=bt
                )
            dset.id.write_direct_chunk(origin, frame)
            stored += len(frame)
            bar.update(1)
            if on_chunk is not None:
                on_chunk(path, bar.n)

    written = 0
    try:
        for origin in origins:
            if raw_decode is not None:
                # raw bytes on this thread (I/O only); decode + encode in the pool
                mask, raw = ds.id.read_direct_chunk(origin)
                fut = pool.submit(_transcode, raw_decode, bytes(raw), int(mask), choice, bt)
                inflight.append((origin, fut))
                fast += 1
            else:
                chunk = _read_full_chunk(ds, origin, chunks, fill)
                if rechunked and unallocated is not None and _all_fill(chunk, unallocated):
                    bar.update(1)
                    continue  # reads the same unallocated: leave it so
                inflight.append((origin, pool.submit(encode_chunk, chunk, choice, nthreads=bt)))
            written += 1
            drain(2 * options.nthreads)
        drain(0)
    finally:
        for _, fut in inflight:
            fut.cancel()
        bar.close()
    rep = DatasetReport(
        path=path,
        action="converted",
        codec=choice.describe(),
        chunks=chunks,
        nbytes=int(ds.nbytes),
        stored=stored,
        nchunks=written,
        note=("rechunked" if rechunked else "")
        + (f"{fast} chunks decoded from raw bytes by b2store" if fast else ""),
    )
    ratio = f"{rep.ratio:.2f}" if rep.ratio else "-"
    say(f"{path}: converted, {choice.describe()}, chunks {chunks}, {written} chunks, ratio {ratio}")
    return rep
