"""Tests of the JPEG 2000 (Grok) codec ``b2store_grok``: real blosc2-j2k and fixtures, no mocks."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blosc2
import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numcodecs
import numpy as np
import pytest

from b2store.errors import CodecError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "fixture" / "b2store_grok"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks._synthetic import tomo_projection, tomo_stack  # noqa: E402

HAS_J2K = importlib.util.find_spec("blosc2_j2k") is not None
pytestmark = pytest.mark.skipif(
    not HAS_J2K, reason="needs blosc2-j2k: pip install b2store[jpeg2000]"
)
HAS_GROK = importlib.util.find_spec("blosc2_grok") is not None
requires_blosc2_grok = pytest.mark.skipif(
    not HAS_GROK, reason="decoding Blosc2 codec 37 needs blosc2-grok: pip install blosc2-grok"
)
if HAS_J2K:
    from b2store.codecs.grok import Grok


def psnr16(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(65535.0**2 / mse)


def run_py(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


IMG = tomo_projection(5, 180, 128, 128)
STACK = tomo_stack(3, 64, 64, seed=3)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "arr",
    [
        IMG,
        STACK,
        STACK.reshape(3, 1, 64, 64),
        (IMG >> 8).astype(np.uint8),
        (STACK >> 8).astype(np.uint8),
        (IMG >> 4).astype(np.int16),
        (IMG >> 9).astype(np.int8),
        (IMG.astype(np.int32) - 20000).astype(np.int16),  # negatives: wrap, then the fallback
        np.asfortranarray(IMG),
        IMG[:, :100],  # non-square, not a power of two
        np.zeros((32, 32), np.uint16),
        np.full((32, 48), 65535, np.uint16),
    ],
    ids=lambda a: f"{a.dtype.str}-{'x'.join(map(str, a.shape))}",
)
def test_lossless_round_trip(arr: np.ndarray) -> None:
    codec = Grok()
    enc = codec.encode(arr)
    dec = codec.decode(enc)
    assert dec.dtype == arr.dtype.newbyteorder("=")
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:  # numcodecs: same bytes
        assert dec.tobytes() == arr.tobytes(order="A")
        return
    assert dec.shape == arr.shape
    np.testing.assert_array_equal(dec, arr)


def test_chunk_is_a_b2nd_cframe_of_j2k_images() -> None:
    enc = Grok().encode(STACK)
    nd = blosc2.ndarray_from_cframe(enc)
    assert nd.schunk.cparams.codec == blosc2.Codec.J2K
    assert nd.chunks == STACK.shape
    assert nd.blocks == (1, 64, 64)
    np.testing.assert_array_equal(nd[...], STACK)
    assert STACK.nbytes / len(enc) > 1.5  # noisy 16-bit data: JPEG 2000 lossless ~1.8x


def test_nthreads_and_out() -> None:
    codec = Grok(nthreads=2)
    enc = codec.encode(STACK)
    out = np.empty_like(STACK)
    assert codec.decode(enc, out=out) is out
    np.testing.assert_array_equal(out, STACK)
    np.testing.assert_array_equal(Grok().decode(enc), STACK)
    # Lossy with 2 Blosc2 threads (the plugin's global parameters shared by both) decodes to
    # exactly what 1 thread gives.
    for kw in ({"ratio": 10}, {"psnr": 75}):
        one = Grok(**kw).decode(Grok(**kw).encode(STACK))  # type: ignore[arg-type]
        two = Grok(**kw).decode(Grok(nthreads=2, **kw).encode(STACK))  # type: ignore[arg-type]
        np.testing.assert_array_equal(one, two)


def test_incompressible_falls_back_to_lossless_blosc2() -> None:
    noise = np.random.default_rng(0).integers(0, 65536, (32, 32), dtype=np.uint16)
    enc = Grok().encode(noise)
    nd = blosc2.ndarray_from_cframe(enc)  # keep it alive: .schunk of a temporary can segfault
    assert nd.schunk.cparams.codec == blosc2.Codec.ZSTD
    np.testing.assert_array_equal(Grok().decode(enc), noise)


# ----------------------------------------------------------------------------- lossy targets
@pytest.mark.parametrize("ratio", [4.0, 10.0, 20.0])
def test_lossy_ratio_target(ratio: float) -> None:
    codec = Grok(ratio=ratio)
    enc = codec.encode(IMG)
    # The target applies to the codestream; the b2nd frame and JP2 boxes add ~300 bytes.
    assert 0.98 * IMG.nbytes / ratio <= len(enc) <= 1.02 * IMG.nbytes / ratio + 400, len(enc)
    dec = codec.decode(enc)
    assert not np.array_equal(dec, IMG)
    assert np.abs(dec.astype(np.int64) - IMG).max() < 2000
    assert psnr16(dec, IMG) > 55


@pytest.mark.parametrize("target", [70.0, 80.0])
def test_lossy_psnr_target(target: float) -> None:
    codec = Grok(psnr=target)
    dec = codec.decode(codec.encode(STACK))
    assert psnr16(dec, STACK) >= target - 1.0
    assert STACK.nbytes / len(codec.encode(STACK)) > 2.0


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (IMG.astype(np.uint32), "uint32"),
        (IMG.astype(np.int32), "int32"),
        (IMG.astype(np.float32), "float32"),
        (IMG.astype(np.float64), "float64"),
        (IMG.astype(np.float16), "float16"),
        (IMG > 20000, "bool"),
        (IMG.astype(">u2"), "big-endian"),
        (IMG[0], "2-D images"),
        (np.zeros((8, 8), np.uint16), "too small"),
        (np.zeros((4, 8, 128), np.uint16), "too small"),
        (np.zeros((128, 15), np.uint8), "too small"),
    ],
)
def test_refuses_what_cannot_be_read_back(arr: np.ndarray, match: str) -> None:
    with pytest.raises(CodecError, match=match) as info:
        Grok().encode(arr)
    assert "b2store_grok" in str(info.value)


def test_refuses_flat_bytes_and_lossy_signed() -> None:
    with pytest.raises(CodecError, match="b2store_grok"):
        Grok().encode(IMG.tobytes())
    with pytest.raises(CodecError, match="signed"):
        Grok(ratio=10).encode(IMG.astype(np.int16))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ratio": 0.5}, ValueError, r"range \(1, 10000\]"),
        ({"ratio": float("nan")}, ValueError, "ratio"),
        ({"psnr": -3}, ValueError, "psnr"),
        ({"ratio": 10, "psnr": 70}, ValueError, "at most one"),
        ({"ratio": "10"}, TypeError, "ratio"),
        ({"ratio": True}, TypeError, "ratio"),
        ({"nthreads": 0}, ValueError, r"inclusive range \(1, 256\)"),
        ({"nthreads": 1.5}, TypeError, "nthreads"),
    ],
)
def test_config_validation(kwargs: dict[str, object], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        Grok(**kwargs)  # type: ignore[arg-type]


def test_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        Grok(10)  # type: ignore[misc]


def test_config_registry_repr_pickle() -> None:
    codec = Grok(ratio=8, nthreads=2)
    cfg = codec.get_config()
    assert cfg == {"id": "b2store_grok", "ratio": 8.0, "psnr": None, "nthreads": 2}
    assert json.loads(json.dumps(cfg)) == cfg
    again = numcodecs.get_codec(dict(cfg))
    assert isinstance(again, Grok)
    assert again == codec
    assert "ratio=8.0" in repr(codec)
    assert pickle.loads(pickle.dumps(codec)) == codec


def test_entry_point_in_fresh_interpreter() -> None:
    res = run_py(
        """
        import sys, numpy as np, numcodecs
        c = numcodecs.get_codec({"id": "b2store_grok"})
        a = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7)
        assert (c.decode(c.encode(a)) == a).all()
        print(type(c).__module__)
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "b2store.codecs.grok"


def test_missing_blosc2_j2k_is_a_clear_error() -> None:
    res = run_py(
        """
        import sys
        sys.modules["blosc2_j2k"] = None  # import now fails like an absent package
        from b2store.codecs.grok import Grok
        try:
            Grok()
        except ValueError as e:
            print(e)
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "b2store_grok needs blosc2-j2k: pip install 'b2store[jpeg2000]'"


def test_missing_blosc2_grok_is_a_clear_error_for_codec_37() -> None:
    res = run_py(
        f"""
        import sys
        sys.modules["blosc2_grok"] = None
        from b2store.codecs.grok import Grok
        from b2store.errors import CodecError
        blob = open({str(FIXTURE / "codec.02" / "encoded.00.dat")!r}, "rb").read()
        try:
            Grok().decode(blob)
        except CodecError as e:
            print(e)
        """
    )
    assert res.returncode == 0, res.stderr
    assert "pip install blosc2-grok" in res.stdout
    assert "codec 37" in res.stdout


# ----------------------------------------------------------------------------- bad bytes
def _good() -> bytes:
    return (FIXTURE / "codec.01" / "encoded.00.dat").read_bytes()


def _flip(b: bytes, pos: int, bit: int = 0) -> bytes:
    m = bytearray(b)
    m[pos] ^= 1 << bit
    return bytes(m)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00",
        b"not a blosc2 frame at all" * 10,
        bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
        _good()[:100],
        _good()[:-1],
        _good() + b"\x00",
        _flip(_good(), 12, 3),  # header_size
        _flip(_good(), 20, 1),  # frame_size
        _flip(_good(), 165 + 5, 0),  # chunk nbytes
        _flip(_good(), 165 + 33, 4),  # block offset
        _flip(_good(), 303, 5),  # JPEG 2000 SIZ height (this crashed Grok before validation)
        blosc2.asarray(IMG, chunks=(64, 128), blocks=(64, 128)).to_cframe(),  # 2 chunks
        blosc2.asarray(IMG, chunks=(128, 128), blocks=(32, 128)).to_cframe(),  # not one image
        blosc2.asarray(IMG.astype(np.float32), chunks=(128, 128), blocks=(128, 128)).to_cframe(),
        blosc2.compress2(IMG.tobytes()),  # a bare chunk, no frame
    ],
)
def test_bad_bytes_raise_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError, match="b2store_grok"):
        Grok().decode(blob)


def test_frame_codec_id_is_read_from_the_header_as_python_blosc2_reads_it() -> None:
    """decode takes the codec id (37 grok, 39 J2K) from b2store's own frame parse: it agrees with
    python-blosc2's on every golden fixture."""
    from b2store.codecs import _blosc2frame as bf

    for path in sorted(FIXTURE.glob("codec.*/encoded.*.dat")):
        blob = path.read_bytes()
        arr = blosc2.ndarray_from_cframe(blob, copy=False)
        assert bf.parse_frame(blob).codec_id == int(arr.schunk.cparams.codec.value), path


def test_decode_frames_without_a_stored_chunk_and_plain_frames() -> None:
    """A frame whose chunk is a frame-level special offset (blosc2.zeros, uninit) decodes to
    zeros; a plain (non-b2nd) frame is refused with a pointer to b2store_b2nd."""
    kw = {"dtype": "u2", "chunks": (2, 64, 64), "blocks": (1, 64, 64)}
    for make in (blosc2.zeros, blosc2.uninit):
        frame = bytes(make((2, 64, 64), **kw).to_cframe())
        out = Grok().decode(frame)
        assert out.shape == (2, 64, 64) and out.dtype == np.uint16 and not out.any()
        assert out.flags.writeable
    plain = bytes(blosc2.SChunk(chunksize=8192, data=np.arange(4096, dtype="u2")).to_cframe())
    with pytest.raises(CodecError, match=r"b2store_grok: not a b2nd frame.*b2store_b2nd"):
        Grok().decode(plain)


def test_decode_takes_any_buffer_without_changing_values() -> None:
    blob = _good()
    ref = Grok().decode(blob)
    for buf in (bytearray(blob), memoryview(blob), np.frombuffer(blob, dtype=np.uint8)):
        np.testing.assert_array_equal(Grok().decode(buf), ref)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(CodecError, match="b2store_grok"):
        Grok().decode(12345)


def test_mutations_never_crash_the_process() -> None:
    """Bit flips anywhere in j2k- and grok-written chunks: decode or CodecError, never a crash."""
    res = run_py(
        f"""
        import numpy as np
        from pathlib import Path
        from b2store.codecs.grok import Grok
        from b2store.errors import CodecError
        F = Path({str(FIXTURE)!r})
        codec, rng, n = Grok(), np.random.default_rng(2026), {{"ok": 0, "err": 0}}
        for idx in range(4):
            for i in range(2):
                blob = (F / f"codec.{{idx:02d}}" / f"encoded.{{i:02d}}.dat").read_bytes()
                for _ in range(40):
                    m = bytearray(blob)
                    for _ in range(int(rng.integers(1, 4))):
                        m[int(rng.integers(0, len(m)))] ^= 1 << int(rng.integers(0, 8))
                    try:
                        codec.decode(bytes(m))
                        n["ok"] += 1
                    except CodecError:
                        n["err"] += 1
        print(n["ok"], n["err"])
        """
    )
    assert res.returncode == 0, f"decoder crashed ({res.returncode}): {res.stderr[-2000:]}"
    ok, err = map(int, res.stdout.split())
    assert ok + err == 320 and err > 0


# ----------------------------------------------------------------------------- threads
def test_concurrent_encodes_with_different_settings() -> None:
    lossless, lossy = Grok(), Grok(ratio=10)
    jobs = [(lossless if k % 2 else lossy, tomo_projection(k, 16, 128, 128)) for k in range(16)]

    def work(job: tuple[Grok, np.ndarray]) -> tuple[bool, float]:
        codec, img = job
        enc = codec.encode(img)
        return bool(np.array_equal(codec.decode(enc), img)), img.nbytes / len(enc)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, jobs))
    for (codec, _), (exact, ratio) in zip(jobs, results, strict=True):
        if codec is lossless:
            assert exact and ratio < 2.5
        else:
            assert not exact and 8.5 <= ratio <= 10.2


# ----------------------------------------------------------------------------- golden fixtures
def _fixture_cases() -> list[object]:
    # codec.02/03 were written by blosc2-grok (codec 37): decoding them needs that plugin.
    return [
        pytest.param(c, a, marks=[requires_blosc2_grok] if c >= 2 else [])
        for c in range(4)
        for a in range(2)
    ]


@pytest.mark.parametrize(("codec_idx", "array_idx"), _fixture_cases())
def test_golden_fixture_decodes(codec_idx: int, array_idx: int) -> None:
    d = FIXTURE / f"codec.{codec_idx:02d}"
    config = json.loads((d / "config.json").read_text())
    prov = json.loads((d / "provenance.json").read_text())
    codec = numcodecs.get_codec(config)
    blob = (d / f"encoded.{array_idx:02d}.dat").read_bytes()
    nd = blosc2.ndarray_from_cframe(blob)  # keep it alive: .schunk of a temporary can segfault
    assert nd.schunk.cparams.codec.value == prov["blosc2_codec"]
    original = np.load(FIXTURE / f"array.{array_idx:02d}.npy")
    dec = codec.decode(blob)
    if config["ratio"] is None:
        np.testing.assert_array_equal(dec, original)
    else:
        np.testing.assert_array_equal(dec, np.load(d / f"decoded.{array_idx:02d}.npy"))
        assert psnr16(dec, original) > 55


def test_golden_fixtures_pass_the_shared_check() -> None:
    """The shared numcodecs fixture check (``decoded.NN.npy`` for the lossy codecs)."""
    if HAS_GROK:
        assert common.check_backwards_compatibility("b2store_grok") == 8
    else:  # codec.02/03 were written by blosc2-grok (codec 37): check the others only
        pytest.skip("decoding Blosc2 codec 37 needs blosc2-grok")


@pytest.mark.parametrize(
    "arr",
    [IMG, STACK, (IMG >> 8).astype(np.uint8), (IMG >> 4).astype(np.int16)],
    ids=lambda a: f"{a.dtype.str}-{'x'.join(map(str, a.shape))}",
)
def test_shared_numcodecs_checks(arr: np.ndarray) -> None:
    """Lossless round trip through bytes, bytearray and ``out=`` (codec_checks), and configs
    that rebuild equal codecs through the registry."""
    common.check_encode_decode(arr, Grok())
    common.check_encode_decode(arr, Grok(nthreads=2))
    for codec in (Grok(), Grok(ratio=8, nthreads=2), Grok(psnr=70.5)):
        common.check_config(codec)


@pytest.mark.parametrize("codec_idx", [0, 1])
def test_encoder_output_is_stable(codec_idx: int) -> None:
    """Our encoder still writes the committed bytes (format drift on a blosc2/plugin upgrade)."""
    d = FIXTURE / f"codec.{codec_idx:02d}"
    codec = numcodecs.get_codec(json.loads((d / "config.json").read_text()))
    for i in range(2):
        arr = np.load(FIXTURE / f"array.{i:02d}.npy")
        assert codec.encode(arr) == (d / f"encoded.{i:02d}.dat").read_bytes()


@requires_blosc2_grok
def test_grok_and_j2k_lossless_codestreams_agree() -> None:
    """blosc2-grok (codec 37) and blosc2-j2k (codec 39) decode to the same lossless images."""
    for i in range(2):
        a = Grok().decode((FIXTURE / "codec.00" / f"encoded.{i:02d}.dat").read_bytes())
        b = Grok().decode((FIXTURE / "codec.02" / f"encoded.{i:02d}.dat").read_bytes())
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- zarr
def test_zarr_v2_array_round_trip(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    data = tomo_stack(5, 96, 80, seed=9)  # edge chunks: 5 = 2 + 2 + 1
    z = zarr.create_array(
        tmp_path / "v2.zarr",
        shape=data.shape,
        chunks=(2, 96, 80),
        dtype="uint16",
        zarr_format=2,
        compressors=Grok(),
        filters=None,
        fill_value=0,
    )
    z[...] = data
    meta = json.loads((tmp_path / "v2.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "b2store_grok"
    res = run_py(
        f"""
        import zarr, numpy as np
        z = zarr.open_array({str(tmp_path / "v2.zarr")!r}, mode="r")
        print(int(z[...].astype(np.int64).sum()), z.shape)
        """
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == str(int(data.astype(np.int64).sum()))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "v2.zarr", mode="r")[...], data)


def test_zarr_v3_array_round_trip(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    zarr3 = pytest.importorskip("b2store.codecs.zarr3")
    if not hasattr(zarr3, "GrokCodec"):
        pytest.skip("b2store.codecs.zarr3.GrokCodec is not there yet")
    data = tomo_stack(5, 96, 80, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.create_array(
            tmp_path / "v3.zarr",
            shape=data.shape,
            chunks=(2, 96, 80),
            dtype="uint16",
            zarr_format=3,
            serializer=zarr3.GrokCodec(ratio=10),
            compressors=None,
            fill_value=0,
        )
        z[...] = data
    meta = json.loads((tmp_path / "v3.zarr" / "zarr.json").read_text())
    assert meta["codecs"][0]["name"] == "b2store.grok"
    back = zarr.open_array(tmp_path / "v3.zarr", mode="r")[...]
    assert psnr16(back, data) > 60


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_and_dask_read_back(tmp_path: Path, zarr_format: int) -> None:
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    data = tomo_stack(5, 96, 80, seed=9)
    if zarr_format == 2:
        enc: dict[str, object] = {"compressors": [Grok()], "filters": None}
    else:
        zarr3 = pytest.importorskip("b2store.codecs.zarr3")
        if not hasattr(zarr3, "GrokCodec"):
            pytest.skip("b2store.codecs.zarr3.GrokCodec is not there yet")
        enc = {"serializer": zarr3.GrokCodec(), "compressors": None}
    path = tmp_path / f"v{zarr_format}.zarr"
    ds = xr.Dataset({"proj": (("angle", "y", "x"), data)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, zarr_format=zarr_format, encoding={"proj": {**enc, "chunks": (2, 96, 80)}})
    back = xr.open_zarr(path, mask_and_scale=False)["proj"]
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back.values, data)
    arr = da.from_zarr(str(path), component="proj")
    np.testing.assert_array_equal(arr.compute(scheduler="threads"), data)


def test_fortran_ordered_chunks_keep_their_bytes() -> None:
    """numcodecs semantics (zarr v2 order="F"): the decoded bytes are the input's bytes."""
    img = np.asfortranarray(IMG[:, :100])
    dec = Grok().decode(Grok().encode(img))
    assert dec.tobytes() == img.tobytes(order="A")


SMALL_U1 = (np.add.outer(np.arange(32), np.arange(40) * 3) % 250).astype("u1")


def test_decode_fills_a_fortran_ordered_out() -> None:
    """numcodecs callers (zarr-python 2 ``order="F"``) decode into an F-ordered chunk: the
    decoder wrote into a flattened copy and returned ``out`` untouched (all zeros)."""
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(np.asfortranarray(SMALL_U1))  # stored as the C-ordered transpose
    out = np.zeros(SMALL_U1.shape, SMALL_U1.dtype, order="F")
    assert codec.decode(enc, out=out) is out
    np.testing.assert_array_equal(out, SMALL_U1)
    # the same bytes as numcodecs' own codecs give
    zstd = numcodecs.Zstd()
    ref = np.zeros(SMALL_U1.shape, SMALL_U1.dtype, order="F")
    zstd.decode(zstd.encode(np.asfortranarray(SMALL_U1)), out=ref)
    np.testing.assert_array_equal(out, ref)


def test_decode_fills_a_c_ordered_or_bytearray_out() -> None:
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(SMALL_U1.astype("u2") * 200)
    out = np.zeros(SMALL_U1.shape, "u2")
    codec.decode(enc, out=out)
    np.testing.assert_array_equal(out, SMALL_U1.astype("u2") * 200)
    raw = bytearray(SMALL_U1.nbytes)
    codec.decode(codec.encode(SMALL_U1), out=raw)
    assert bytes(raw) == SMALL_U1.tobytes()


def test_decode_refuses_a_non_contiguous_out() -> None:
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    enc = codec.encode(SMALL_U1.astype("u2"))
    with pytest.raises(CodecError, match="b2store_grok: Expected out to be a contiguous"):
        codec.decode(enc, out=np.zeros((32, 80), "u2")[:, ::2])


def test_grok_decode_is_writable() -> None:
    """Like b2nd: numcodecs users may edit a decoded chunk in place."""
    img = (np.arange(64 * 64, dtype="u2").reshape(64, 64) * 7) % 4096
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    out = codec.decode(codec.encode(img))
    assert np.array_equal(out, img)
    assert out.flags.writeable


def test_jpeg2000_frames_of_other_layouts_point_to_b2store_b2nd() -> None:
    """blosc2-j2k also writes 2-D tiles (blocks smaller than the image) and frames of several
    chunks; b2store_grok refuses them and now says that b2store_b2nd decodes them (it does,
    like python-blosc2)."""
    from b2store.codecs import grok
    from b2store.codecs.b2nd import decode_b2nd

    j2k = grok._load_j2k()  # registers the plugin once per process
    cparams = {
        "codec": blosc2.Codec.J2K,
        "filters": [],
        "splitmode": blosc2.SplitMode.NEVER_SPLIT,
        "nthreads": 1,
    }
    for data, chunks, blocks in [
        (IMG[:128, :128], (128, 128), (64, 64)),
        (STACK, (2, 64, 64), (1, 64, 64)),
    ]:
        with grok._lock:  # the plugin's parameters are process-global
            j2k.set_params_defaults()  # lossless
            arr = blosc2.asarray(data, chunks=chunks, blocks=blocks, cparams=cparams)
        frame = bytes(arr.to_cframe())
        with pytest.raises(CodecError, match=r"not a chunk of 2-D images.*with b2store_b2nd"):
            numcodecs.get_codec({"id": "b2store_grok"}).decode(frame)
        np.testing.assert_array_equal(decode_b2nd(frame), arr[...])


def test_codec_works_after_python_blosc2_used_j2k_first(tmp_path: Path) -> None:
    """Reading a J2K array with python-blosc2 before creating the codec left blosc2-j2k's
    runtime configured, and the codec's own configure(backend="grok") raised a bare
    RuntimeError ("runtime is already in use"): the codec could not be created in that
    process. It now goes on with the runtime's backend (grok, the only one shipped)."""
    res = run_py(f"""
        import numpy as np, blosc2, blosc2_j2k, numcodecs
        img = (np.add.outer(np.arange(64), np.arange(48)) * 300).astype("u2")
        p = {str(tmp_path / "j.b2nd")!r}
        blosc2.asarray(img, chunks=img.shape, blocks=img.shape, urlpath=p, mode="w",
                       cparams={{"codec": blosc2.Codec.J2K, "filters": [],
                                "splitmode": blosc2.SplitMode.NEVER_SPLIT}})
        assert np.array_equal(blosc2.open(p)[:], img)
        import b2store.codecs
        codec = numcodecs.get_codec({{"id": "b2store_grok"}})
        stack = np.stack([img, img[::-1]])
        assert np.array_equal(codec.decode(codec.encode(stack)), stack)
        print("ok")
    """)
    assert res.returncode == 0 and "ok" in res.stdout, res.stdout + res.stderr
