"""What must stay exact under the lossy options (itrunc, JPEG 2000) of ``convert``.

Contract: :func:`_settle_lossy` returns the codec choice one dataset is written with: the lossy
part of the options is dropped, with a line through ``say``, for values that are meanings rather
than measurements (:func:`_exact_reason`: dimension scales, variables other variables name as
coordinates, bounds, counts or indices (:func:`_referenced_exact`), enumerated types, CF flags,
categorical standard names; :func:`_name_reason`: NeXus-style categorical fields by name;
:func:`_tiny_reason`: datasets smaller than :data:`TINY_ITEMS`; :func:`_few_values_reason`:
integer datasets of at most :data:`FEW_VALUES` distinct values the option would merge or move),
for datasets JPEG 2000 cannot code, and for datasets with more missing-data markers than itrunc
keeps (or markers its ``keep`` key would not hold exactly). Otherwise itrunc gets the dataset's
missing-data markers and the bins of its CF valid range as its ``keep`` values
(:func:`_missing_markers`), so no item becomes or stops being missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from b2store.convert._chunks import _chunk_grid, _grok_for, _j2k_unsuitable
from b2store.convert._hdf5 import recorded_fill
from b2store.convert._options import CodecChoice, _lossy

#: attributes whose values mark missing data (CF, netCDF): readers compare items to them exactly
_MARKER_ATTRS = ("_FillValue", "missing_value")


@dataclass(frozen=True)
class _Markers:
    """The values :func:`convert` keeps exact when truncating an integer dataset."""

    keep: tuple[int, ...]  # in the dataset's dtype (as Python ints)
    kept: tuple[str, ...]  # "_FillValue attribute -1", ...
    skipped: tuple[str, ...]  # markers no item can equal: "missing_value attribute 70000"
    lossless: str | None  # why ``keep`` cannot keep them (then the dataset is stored lossless)


def _marker_values(ds: Any) -> list[tuple[str, Any]]:
    """``(what, value)`` for each missing-data marker of ``ds``: every value of its
    ``_FillValue`` and ``missing_value`` attributes, and its HDF5 fill value when it has no
    ``_FillValue`` attribute and that fill value is not 0 (netCDF-C writes its default fill,
    int16 -32767, as the HDF5 fill value, and netCDF4-python masks it without an attribute)."""
    found: list[tuple[str, Any]] = []
    has_fill_attr = False
    for name in _MARKER_ATTRS:
        if name not in ds.attrs:
            continue
        try:
            value = ds.attrs[name]
        except Exception:  # an attribute h5py cannot read: nothing to compare
            continue
        has_fill_attr |= name == "_FillValue"
        found.extend((f"{name} attribute", v) for v in np.asarray(value).ravel().tolist())
    fill = recorded_fill(ds)
    if not has_fill_attr and fill is not None and np.asarray(fill).item() != 0:
        found.append(("HDF5 fill value", np.asarray(fill).item()))
    return found


def _twin_dtype(ds: Any) -> np.dtype[Any] | None:
    """The dtype netCDF's ``_Unsigned`` attribute says the items really have (int16 items with
    ``_Unsigned="true"`` are uint16 values), or None."""
    flag = ds.attrs.get("_Unsigned") if "_Unsigned" in ds.attrs else None
    if isinstance(flag, np.ndarray):
        flag = flag.ravel()[0] if flag.size == 1 else None
    if isinstance(flag, bytes | np.bytes_):
        flag = flag.decode(errors="replace")
    if not isinstance(flag, str):
        return None
    kind = {"true": "u", "false": "i"}.get(flag.strip().lower())
    if kind is None or kind == ds.dtype.kind:
        return None
    return np.dtype(f"{ds.dtype.byteorder}{kind}{ds.dtype.itemsize}")


def _as_item(dtype: np.dtype[Any], twin: np.dtype[Any] | None, value: Any) -> int | None:
    """``value`` as an item of integer ``dtype`` (as a Python int), or of its ``_Unsigned``
    twin viewed as ``dtype``; None when neither can hold it (fractional, NaN, out of range, not
    a number)."""
    from b2store.codecs.itrunc import keep_values, parse_keep

    try:
        as_keep = parse_keep("convert", [value])  # numbers only; integral floats as ints
        if as_keep is None or not isinstance(as_keep[0], int):
            return None
        try:
            return int(keep_values(dtype, as_keep)[0])
        except ValueError:  # out of range: perhaps a value of the _Unsigned twin
            if twin is not None:
                return int(keep_values(twin, as_keep).view(dtype)[0])
    except (TypeError, ValueError):
        pass
    return None


def _valid_bounds(ds: Any) -> list[tuple[str, int, str]]:
    """``(what, item, side)`` for each bound of the CF valid range of integer dataset ``ds``
    (``valid_min``, ``valid_max``, ``valid_range``; side ``"min"`` or ``"max"``) that lies inside
    its dtype's range (one at the dtype's end cannot be crossed), as an item of the dtype (or of
    its ``_Unsigned`` twin viewed as the dtype). A fractional bound is rounded inwards, as
    readers compare items with it."""
    import math

    dtype = np.dtype(ds.dtype)
    twin = _twin_dtype(ds)
    found: list[tuple[str, Any, str]] = []
    for name in ("valid_min", "valid_max", "valid_range"):
        if name not in ds.attrs:
            continue
        try:
            values = np.asarray(ds.attrs[name]).ravel().tolist()
        except Exception:  # an attribute h5py cannot read: nothing to compare
            continue
        if name == "valid_range":
            if len(values) == 2:
                found += [
                    (f"{name} minimum", values[0], "min"),
                    (f"{name} maximum", values[1], "max"),
                ]
        elif len(values) == 1:
            found.append((name, values[0], name.removeprefix("valid_")))
    out: list[tuple[str, int, str]] = []
    for what, value, side in found:
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            value = math.ceil(value) if side == "min" else math.floor(value)
        item = _as_item(dtype, twin, value)
        if item is None:
            continue
        dom = twin if twin is not None else dtype  # readers compare in the twin's values
        info = np.iinfo(dom)
        there = int(np.array(item, dtype=dtype).view(dom))
        if (side == "min" and there > info.min) or (side == "max" and there < info.max):
            out.append((f"{what} {value!r}", item, side))
    return out


def _missing_markers(
    ds: Any, extra: tuple[int | float, ...] | None = None, max_error: int | None = None
) -> _Markers:
    """The missing-data markers of integer dataset ``ds`` (:func:`_marker_values`, plus
    ``extra``) as values of its dtype, for the truncation's ``keep`` key.

    Truncating without them turns missing items into data, silently: a marker at the top of a
    range moves (netCDF-C's int16 fill -1 became -4 with --itrunc-max-error 3, uint16 65535
    became 65532), and values just above a marker fall onto it (1..3 became a _FillValue of 0).
    A marker the dtype cannot hold (fractional, NaN, out of range, a string) cannot equal any
    item and is left out; with ``_Unsigned`` the values of the unsigned (signed) twin count.

    With ``max_error`` (the truncation's), the bounds of a CF valid range
    (:func:`_valid_bounds`) are kept too: truncation floors each item to the bottom of its bin
    of ``2**k`` values, so the items of a bound's bin could cross it (valid_min 5, k 2: 6 and 7
    became 4, then masked; valid_max 5: 6 and 7, invalid, became 4). The bottom of that bin
    goes to ``keep``, so its items keep their exact values.
    """
    from b2store.codecs.itrunc import keep_values, parse_keep, plan_truncation, truncate

    dtype = np.dtype(ds.dtype)
    twin = _twin_dtype(ds)
    found = _marker_values(ds) + [("itrunc_keep value", v) for v in extra or ()]
    keep: dict[int, str] = {}
    skipped: list[str] = []
    bins = 0
    for what, value in found:
        item = _as_item(dtype, twin, value)
        if item is None:
            skipped.append(f"{what} {value!r}")
        elif item not in keep:
            keep[item] = f"{what} {item}"
    if max_error is not None:
        plan = plan_truncation(dtype, max_abs_error=max_error)
        for what, item, _side in _valid_bounds(ds) if plan.zeroed else ():
            low = int(truncate(np.array(item, dtype=dtype), plan))
            if low not in keep:
                keep[low] = f"{what} (its truncation bin, from {low}, exact)"
                bins += 1
    values = sorted(keep)
    lossless = None
    try:
        parse_keep("convert", values)  # the codec's own limit on the number of values
    except ValueError as exc:
        lossless = (
            f"{len(values)} missing-data markers{' and valid-range bins' if bins else ''}, more "
            f"than the truncation keeps exactly ({str(exc).removeprefix('convert: keep: ')})"
        )
    else:
        # a guard: keep_values once cast lists mixing values >= 2**63 with others via float64
        held = [int(v) for v in keep_values(dtype, list[int | float](values)).tolist()]
        if held != values:  # the codec would keep other values than the markers: refuse
            lossless = (
                f"the truncation's keep key holds {held}, not the markers {values} "
                "(b2store.codecs.itrunc.keep_values)"
            )
    return _Markers(
        keep=tuple(values),
        kept=tuple(keep[v] for v in values),
        skipped=tuple(skipped),
        lossless=lossless,
    )


def _j2k_markers(ds: Any) -> str | None:
    """Why lossy JPEG 2000 cannot code ``ds`` without changing which items are missing: it has
    missing-data markers (:func:`_marker_values`) its dtype can hold, or a CF valid range
    inside its dtype's range (JPEG 2000 moves any value, onto a marker or across a bound, and
    keeps none exact). None if it has neither."""
    if np.dtype(ds.dtype).kind not in "ui":
        return None
    marks = _missing_markers(ds)
    names = list(marks.kept) + [what for what, _, _ in _valid_bounds(ds)]
    if not names:
        return None
    return (
        f"{', '.join(names)}: JPEG 2000 can move real values onto missing-data markers or "
        "across the valid range and keeps no value exact"
    )


#: CF standard names (any word of the attribute: modifiers follow the name) whose values are
#: categories: a lossy codec would turn one category into another
_CATEGORICAL_NAMES = frozenset(
    {"area_type", "land_cover", "land_cover_lccs", "realization", "region", "soil_type"}
)
#: attributes naming variables that hold coordinates, cell bounds, counts or indices (CF
#: coordinates/bounds/climatology, geometry node_count/part_node_count/interior_ring, UGRID
#: *_coordinates and *_connectivity): stored lossless, whichever variable names them
_NAMING_ATTRS = frozenset(
    {
        "coordinates",
        "bounds",
        "climatology",
        "node_count",
        "part_node_count",
        "interior_ring",
        "node_coordinates",
        "edge_coordinates",
        "face_coordinates",
        "volume_coordinates",
    }
)
#: attributes that make the variable holding them counts, indices or identifiers (CF ragged
#: arrays' sample_dimension/instance_dimension, compression by gathering, cf_role ids)
_SELF_ATTRS = ("sample_dimension", "instance_dimension", "compress", "cf_role")
#: CF flag attributes: the values are flags or bit masks, never quantities
_FLAG_ATTRS = ("flag_values", "flag_masks", "flag_meanings")


def _attr_text(obj: Any, name: str) -> str | None:
    """A text attribute of ``obj`` as ``str`` (bytes decoded, a one-item array unwrapped; a
    list of strings joined with spaces), or None."""
    try:
        value = obj.attrs[name]
    except Exception:
        return None
    items = np.asarray(value).ravel().tolist() if not isinstance(value, str | bytes) else [value]
    words = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in items]
    if not words or not all(isinstance(w, str) for w in words):
        return None
    return " ".join(words)


def _resolve(fin: Any, group: str, name: str) -> str | None:
    """The path of the dataset a CF attribute names from a variable of ``group``: an absolute
    path, a path relative to the group, or a bare name found in the group or, as netCDF-4 and
    CF search, in the nearest ancestor group holding it. None if no dataset has that name."""
    import h5py

    if name.startswith("/"):
        cands = [name]
    elif "/" in name:
        cands = [f"{group.rstrip('/')}/{name}"]
    else:
        parts = [p for p in group.split("/") if p]
        cands = ["/" + "/".join([*parts[:i], name]) for i in range(len(parts), -1, -1)]
    for c in cands:
        try:
            obj = fin.get(c, getlink=False)
        except Exception:
            continue
        if isinstance(obj, h5py.Dataset):
            return str(c)
    return None


def _referenced_exact(fin: Any, walked: list[tuple[str, Any]]) -> dict[str, str]:
    """``{dataset path: why}`` for the datasets other datasets name as coordinates, dimension
    scales, cell bounds, counts or indices (their ``DIMENSION_LIST``, :data:`_NAMING_ATTRS`,
    attributes ending in ``_connectivity``): lossy options store them lossless. A coordinate
    truncated gets repeated values (xarray: a non-unique index) and no longer matches its
    bounds; a truncated index points at other items."""
    import h5py

    out: dict[str, str] = {}
    for name, link in walked:
        if link is not None:
            continue
        try:
            obj = fin.get(name, getlink=False)
        except Exception:
            continue
        if not isinstance(obj, h5py.Dataset):
            continue
        path = "/" + name
        if "DIMENSION_LIST" in obj.attrs and obj.ndim:
            try:
                for axis in range(obj.ndim):
                    for sc in obj.dims[axis].values():
                        if sc.name and sc.name != path:
                            out.setdefault(sc.name, f"dimension scale of {path}")
            except Exception:  # references h5py cannot follow: nothing attached
                pass
        group = path.rpartition("/")[0] or "/"
        try:
            names = [a for a in obj.attrs if a in _NAMING_ATTRS or a.endswith("_connectivity")]
        except Exception:  # attribute names h5py cannot decode: none of these
            names = []
        for attr in names:
            text = _attr_text(obj, attr)
            for word in (text or "").split():
                target = _resolve(fin, group, word)
                if target is not None and target != path:
                    out.setdefault(target, f"named by the {attr} attribute of {path}")
    return out


def _exact_reason(ds: Any, referenced: str | None) -> str | None:
    """Why a lossy option must not touch ``ds`` (it would change what the values mean, not
    just their precision), or None: a dimension scale (coordinate variable), a variable other
    variables name as coordinates/bounds/counts/indices (``referenced``, from
    :func:`_referenced_exact`), an enumerated type, a CF flag variable, a CF count, index or
    identifier variable, or a categorical CF standard name."""
    import h5py

    if h5py.h5ds.is_scale(ds.id):
        return "dimension scale (a coordinate variable)"
    if referenced is not None:
        return referenced
    if h5py.check_enum_dtype(ds.dtype) is not None:
        return "enumerated type (categories)"
    for attr in (*_FLAG_ATTRS, *_SELF_ATTRS):
        if attr in ds.attrs:
            kind = "flag" if attr in _FLAG_ATTRS else "count, index or identifier"
            return f"CF {kind} variable ({attr} attribute)"
    words = (_attr_text(ds, "standard_name") or "").split()
    for w in words:
        if w.endswith("flag") or w.endswith("_binary_mask") or w in _CATEGORICAL_NAMES:
            return f"categorical CF standard_name {' '.join(words)!r}"
    return None


#: NeXus (and similar) integer fields whose values are categories, flags or bit masks, by
#: dataset name: ``image_key`` (NXdetector/NXtomo: 0 projection, 1 flat, 2 dark, 3 invalid),
#: ``pixel_mask``/``detector_mask`` and other ``*_mask`` (NXdetector bit masks), ``*_flag(s)``,
#: ``*_key`` and status scalars such as Diamond's ``scan_finished``
_CATEGORICAL_FIELDS = frozenset({"image_key", "mask", "flag", "flags", "scan_finished"})
_CATEGORICAL_SUFFIXES = ("_key", "_mask", "_flag", "_flags", "_finished")
#: datasets with fewer items than this (or than one ``--blocks`` block) are stored lossless
#: under lossy options: nothing to gain from truncation, everything to lose
TINY_ITEMS = 4096
#: integer datasets with at most this many distinct values, which a lossy option would merge
#: or move, are stored lossless (:func:`_few_values_reason`)
FEW_VALUES = 16
#: up to this many items, the distinct values are counted exactly; above, in a sample of chunks
_FEW_VALUES_EXACT = 4_000_000
_FEW_VALUES_SAMPLE = 16


def _name_reason(ds: Any) -> str | None:
    """Why ``ds``'s name says its values are categories (:data:`_CATEGORICAL_FIELDS`), or
    None."""
    leaf = str(ds.name).rpartition("/")[2].lower()
    if leaf in _CATEGORICAL_FIELDS or leaf.endswith(_CATEGORICAL_SUFFIXES):
        return f"categorical field by name ({leaf!r}: keys, masks, flags or status)"
    return None


def _tiny_reason(ds: Any, choice: CodecChoice) -> str | None:
    """Why ``ds`` is too small for a lossy option (fewer than :data:`TINY_ITEMS` items, or than
    one block of ``choice.blocks``), or None."""
    limit = TINY_ITEMS
    if choice.blocks is not None:
        limit = max(limit, int(np.prod(choice.blocks)))
    if int(ds.size) < limit:
        return f"{int(ds.size)} items, fewer than {limit} (nothing to gain)"
    return None


def _distinct_values(ds: Any, chunks: tuple[int, ...]) -> tuple[np.ndarray, bool] | None:
    """The distinct values of integer dataset ``ds`` read in ``chunks`` (all of them up to
    :data:`_FEW_VALUES_EXACT` items, else :data:`_FEW_VALUES_SAMPLE` chunks spread over the
    dataset) and whether that was a sample; None once more than :data:`FEW_VALUES` show up.
    Every chunk of the grid counts, allocated or not: an unallocated one holds the fill value."""
    origins = _chunk_grid(tuple(ds.shape), chunks)
    sampled = int(ds.size) > _FEW_VALUES_EXACT and len(origins) > _FEW_VALUES_SAMPLE
    if sampled:
        step = len(origins) / _FEW_VALUES_SAMPLE
        origins = [origins[int(i * step)] for i in range(_FEW_VALUES_SAMPLE)]
    seen = np.empty(0, dtype=ds.dtype)
    for origin in origins:
        sel = tuple(slice(o, o + c) for o, c in zip(origin, chunks, strict=True))
        seen = np.union1d(seen, np.unique(ds[sel] if sel else ds[()]))
        if seen.size > FEW_VALUES:
            return None
    return seen, sampled


def _few_values_reason(ds: Any, choice: CodecChoice, chunks: tuple[int, ...]) -> str | None:
    """Why ``ds`` looks categorical to the lossy option of ``choice``: an integer dataset with
    at most :data:`FEW_VALUES` distinct values (exactly, or in a sample of chunks) that the
    truncation would merge (two values truncating to one, ``keep`` considered), or that JPEG
    2000, which keeps no value exact, would code. None otherwise."""
    from b2store.codecs.itrunc import keep_values, plan_truncation, truncate

    if np.dtype(ds.dtype).kind not in "ui" or not _lossy(choice):
        return None
    found = _distinct_values(ds, chunks)
    if found is None:
        return None
    values, sampled = found
    where = "in a sample of its chunks" if sampled else "in all"
    listed = ", ".join(str(v) for v in values.tolist())
    if choice.is_j2k:
        return f"only {values.size} distinct values {where} ({listed}): most likely categories"
    if choice.itrunc_max_error is None:
        return None
    plan = plan_truncation(values.dtype, max_abs_error=choice.itrunc_max_error)
    keep = keep_values(values.dtype, list(choice.itrunc_keep)) if choice.itrunc_keep else None
    if np.unique(truncate(values, plan, keep)).size < values.size:
        return (
            f"only {values.size} distinct values {where} ({listed}), which truncation would "
            "merge: most likely categories"
        )
    return None


def _settle_lossy(
    ds: Any,
    choice: CodecChoice,
    chunks: tuple[int, ...],
    exact: str | None,
    say: Callable[[str], None],
) -> CodecChoice:
    """The codec choice dataset ``ds`` (written in ``chunks``) is converted with: ``choice``
    without its lossy part where that must not apply (``exact``, from :func:`_exact_reason`, or
    the rules of this module; each said through ``say``), and itrunc with the dataset's
    missing-data markers and valid-range bins as its ``keep`` values."""
    path = ds.name
    if choice.itrunc_max_error is not None and ds.dtype.kind not in "ui":
        say(f"{path}: {ds.dtype} is not an integer type: stored lossless (itrunc not applied)")
        choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
    if _lossy(choice):
        if exact is None:  # by name, by size, then (below) by its values
            exact = _name_reason(ds) or _tiny_reason(ds, choice)
        if exact is not None:
            say(f"{path}: {exact.rstrip('. ')}: stored lossless ({_lossy(choice)} not applied)")
            choice = replace(
                choice, itrunc_max_error=None, itrunc_keep=None, j2k_ratio=None, j2k_psnr=None
            )
    if choice.itrunc_max_error is not None:
        markers = _missing_markers(ds, choice.itrunc_keep, choice.itrunc_max_error)
        few = (
            None
            if markers.lossless is not None
            else _few_values_reason(ds, replace(choice, itrunc_keep=markers.keep or None), chunks)
        )
        if few is not None:
            say(f"{path}: {few}: stored lossless (itrunc not applied)")
            choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
            markers = _Markers(keep=(), kept=(), skipped=(), lossless=None)
        if markers.skipped:
            say(
                f"{path}: {', '.join(markers.skipped)}: not a value of {ds.dtype}, so no item can "
                "equal it (not kept)"
            )
        if markers.lossless is not None:
            say(f"{path}: {markers.lossless.rstrip('. ')}: stored lossless (itrunc not applied)")
            choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
        else:
            choice = replace(choice, itrunc_keep=markers.keep or None)
            if markers.keep:
                say(
                    f"{path}: itrunc stores the missing-data markers exactly: "
                    f"{', '.join(markers.kept)}"
                )
    if choice.is_j2k:
        codec = _grok_for(choice, path)  # the settings and the plugin, named with the dataset
        why = (
            _j2k_unsuitable(codec, ds.dtype, chunks)
            or _j2k_markers(ds)
            or _few_values_reason(ds, choice, chunks)
        )
        if why is not None:
            # (the codec's reasons are sentences: "... other dtypes.: stored" read badly)
            say(f"{path}: {why.rstrip('. ')}: stored lossless with b2nd (JPEG 2000 not applied)")
            choice = replace(choice, j2k_ratio=None, j2k_psnr=None)
    return choice
