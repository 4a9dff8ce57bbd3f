"""numcodecs-style checkers shared by the codec tests (b2nd, itrunc, grok, hdf5 pipelines).

Import it as ``import codec_checks``: pytest puts ``tests/codecs`` on ``sys.path`` (the folder
has no ``__init__.py`` on purpose: a package named ``codecs`` would shadow the standard
library), and the module's name is unique across test folders, unlike ``common``/``conftest``.

Golden fixtures live in ``tests/codecs/fixture/<codec_id>/``: ``array.NN.npy`` and, per codec
configuration, ``codec.NN/config.json`` + ``codec.NN/encoded.NN.dat`` (+ optional
``decoded.NN.npy`` for lossy codecs, and ``provenance.json`` naming the library versions).
They are written once by a generator script (:func:`write_fixtures`) and always decoded by
:func:`check_backwards_compatibility`.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest

FIXTURE_ROOT = Path(__file__).resolve().parent / "fixture"

__all__ = [
    "FIXTURE_ROOT",
    "check_backwards_compatibility",
    "check_config",
    "check_encode_decode",
    "check_repr",
    "compare",
    "requires_blosc2_j2k",
    "requires_dask",
    "requires_hdf5plugin",
    "requires_xarray",
    "write_fixtures",
]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# markers defined here, not imported from a conftest: with several tests/*/conftest.py files,
# ``from conftest import ...`` resolves to whichever conftest was imported first
requires_hdf5plugin = pytest.mark.skipif(
    not (_has("h5py") and _has("hdf5plugin")), reason="needs h5py + hdf5plugin"
)
requires_xarray = pytest.mark.skipif(not _has("xarray"), reason="needs xarray")
requires_dask = pytest.mark.skipif(not _has("dask"), reason="needs dask")
requires_blosc2_j2k = pytest.mark.skipif(
    not _has("blosc2_j2k"), reason="needs blosc2-j2k: pip install b2store[jpeg2000]"
)


def _as_array(buf: Any) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        return buf
    return np.frombuffer(memoryview(buf).cast("B"), dtype=np.uint8)


def compare(
    expected: np.ndarray,
    decoded: Any,
    *,
    precision: float | None = None,
    atol: float | None = None,
) -> None:
    """Assert that *decoded* (buffer or array) equals *expected* (viewed/reshaped like it).

    ``precision`` = number of decimals (numpy's ``assert_array_almost_equal``); ``atol`` = an
    absolute bound on the error; both ``None`` = exact.
    """
    # numcodecs' convention (its compare_arrays): the decoded bytes in memory order, read in
    # the memory order of the input (zarr v2 order="F" relies on it)
    dec = _as_array(decoded).reshape(-1, order="A")
    if dec.dtype != expected.dtype:
        dec = np.ascontiguousarray(dec).view(expected.dtype)
    f_order = expected.flags.f_contiguous and not expected.flags.c_contiguous
    dec = dec.reshape(expected.shape, order="F" if f_order else "C")
    if atol is not None:
        diff = np.abs(expected.astype(np.float64) - dec.astype(np.float64))
        assert float(np.nanmax(diff, initial=0.0)) <= atol, f"max error {diff.max()} > {atol}"
    elif precision is not None:
        np.testing.assert_array_almost_equal(dec, expected, decimal=precision)
    else:
        np.testing.assert_array_equal(dec, expected)


def check_encode_decode(
    arr: np.ndarray,
    codec: Any,
    *,
    precision: float | None = None,
    atol: float | None = None,
) -> bytes | np.ndarray:
    """Encode/decode *arr* with *codec* through several input types, as numcodecs does.

    Checks the array itself, a bytes copy of the encoded data, and ``decode(..., out=...)``
    into a preallocated array. Returns the encoded data.
    """
    enc = codec.encode(arr)
    compare(arr, codec.decode(enc), precision=precision, atol=atol)
    enc_bytes = (
        bytes(np.ascontiguousarray(enc).view(np.uint8))
        if isinstance(enc, np.ndarray)
        else bytes(enc)
    )
    compare(arr, codec.decode(enc_bytes), precision=precision, atol=atol)
    compare(arr, codec.decode(bytearray(enc_bytes)), precision=precision, atol=atol)
    out = np.empty_like(arr)
    res = codec.decode(enc_bytes, out=out)
    compare(arr, res, precision=precision, atol=atol)
    compare(arr, out, precision=precision, atol=atol)
    return enc  # type: ignore[no-any-return]


def check_config(codec: Any) -> None:
    """``get_config`` is JSON with ``"id"``; ``get_codec(config)`` rebuilds an equal codec."""
    config = codec.get_config()
    assert config["id"] == codec.codec_id
    again = json.loads(json.dumps(config))
    rebuilt = numcodecs.get_codec(dict(again))
    assert rebuilt == codec
    assert rebuilt.get_config() == config


def check_repr(stmt: str, namespace: dict[str, Any] | None = None) -> None:
    """``repr(eval(stmt)) == stmt`` (numcodecs' convention for codec reprs)."""
    obj = eval(stmt, dict(namespace or {}))
    assert repr(obj) == stmt, f"{repr(obj)!r} != {stmt!r}"


def write_fixtures(
    codec_id: str,
    arrays: Sequence[np.ndarray],
    codecs: Sequence[Any],
    *,
    root: Path = FIXTURE_ROOT,
    store_decoded: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``array.NN.npy`` and ``codec.NN/{config.json, encoded.NN.dat}`` for a codec id."""
    import blosc2

    folder = root / codec_id
    folder.mkdir(parents=True, exist_ok=True)
    for j, arr in enumerate(arrays):
        np.save(folder / f"array.{j:02d}.npy", arr, allow_pickle=False)
    prov = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numcodecs": numcodecs.__version__,
        "blosc2": blosc2.__version__,
        "c-blosc2": blosc2.blosclib_version,
        **(provenance or {}),
    }
    for i, codec in enumerate(codecs):
        sub = folder / f"codec.{i:02d}"
        sub.mkdir(exist_ok=True)
        (sub / "config.json").write_text(json.dumps(codec.get_config(), indent=2, sort_keys=True))
        (sub / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True))
        for j, arr in enumerate(arrays):
            enc = codec.encode(arr)
            data = bytes(enc) if not isinstance(enc, np.ndarray) else enc.tobytes()
            (sub / f"encoded.{j:02d}.dat").write_bytes(data)
            if store_decoded:
                dec = _as_array(codec.decode(data))
                np.save(sub / f"decoded.{j:02d}.npy", dec.view(arr.dtype).reshape(arr.shape))
    return folder


def check_backwards_compatibility(
    codec_id: str,
    *,
    root: Path = FIXTURE_ROOT,
    precision: float | None = None,
    atol: float | None = None,
    decode: Callable[[Any, bytes, np.ndarray], Any] | None = None,
) -> int:
    """Decode every stored fixture of *codec_id* and compare with the stored arrays.

    Parameters
    ----------
    decode : callable, optional
        ``decode(codec, data, expected)`` for codecs that need more than ``codec.decode(data)``
        (e.g. an array -> array filter). Returns the decoded array.

    Returns
    -------
    int
        Number of (codec, array) pairs checked (> 0, or the assertion fails).
    """
    folder = root / codec_id
    arrays = sorted(folder.glob("array.*.npy"))
    assert arrays, f"no fixtures in {folder}: run the generator script"
    checked = 0
    for sub in sorted(folder.glob("codec.*")):
        config = json.loads((sub / "config.json").read_text())
        codec = numcodecs.get_codec(dict(config))
        for enc_path in sorted(sub.glob("encoded.*.dat")):
            j = enc_path.name.split(".")[1]
            expected = np.load(folder / f"array.{j}.npy")
            dec_path = sub / f"decoded.{j}.npy"
            if dec_path.exists():
                expected = np.load(dec_path)
            data = enc_path.read_bytes()
            got = decode(codec, data, expected) if decode else codec.decode(data)
            compare(expected, got, precision=precision, atol=atol)
            checked += 1
    assert checked, f"no encoded fixtures under {folder}"
    return checked


def b2nd_v3_array(store: Any, arr: np.ndarray, chunks: tuple[int, ...], **codec: Any) -> Any:
    """An empty Zarr v3 array shaped like *arr* whose serializer is ``b2store.b2nd(**codec)``."""
    import zarr

    from b2store.codecs.zarr3 import B2ndCodec

    return zarr.create_array(
        store,
        shape=arr.shape,
        chunks=chunks,
        dtype=arr.dtype,
        serializer=B2ndCodec(**codec),
        compressors=None,
        fill_value=0,
    )
