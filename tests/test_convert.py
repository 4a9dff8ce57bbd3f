"""``b2store.convert``: Blosc2 direct-chunk rewrite readable by plain h5py + hdf5plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests._cli_files import write_sample
from tests.conftest import requires_h5py, requires_hdf5plugin, requires_j2k

pytestmark = [requires_h5py, requires_hdf5plugin]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.h5")


def _frames_are_b2nd(path: Path, name: str) -> None:
    import blosc2
    import h5py

    with h5py.File(path) as f:
        d = f[name]
        infos: list[object] = []
        d.id.chunk_iter(infos.append)
        assert infos
        for info in infos:
            _mask, raw = d.id.read_direct_chunk(info.chunk_offset)  # type: ignore[attr-defined]
            arr = blosc2.ndarray_from_cframe(raw)
            assert tuple(arr.shape) == d.chunks  # the filter's rule: b2nd shape == HDF5 chunk


def test_lossless_keeps_everything(sample: Path, tmp_path: Path) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import ConvertOptions, convert

    out = tmp_path / "out.h5"
    rep = convert(sample, out, options=ConvertOptions(nthreads=2))
    actions = {d.path: d.action for d in rep.datasets}
    assert actions["/entry/data/data"] == "converted"
    assert actions["/contig"] == "copied" and actions["/names"] == "copied"
    with h5py.File(sample) as a, h5py.File(out) as b:
        for k in ("entry/data/data", "x", "sparse", "contig", "scalar"):
            np.testing.assert_array_equal(a[k][()], b[k][()])
        assert list(b["names"][()]) == list(a["names"][()])
        assert 32026 in b["entry/data/data"]._filters or "32026" in b["entry/data/data"]._filters
        # attributes, groups, fill value, sparse chunks
        assert b.attrs["title"] == "sample"
        assert b["entry/data"].attrs["NX_class"] == "NXdata"
        assert b["entry/data/data"].attrs["units"] == "counts"
        assert b["sparse"].fillvalue == -1
        assert b["sparse"].id.get_num_chunks() == a["sparse"].id.get_num_chunks() == 2
        # dimension scales re-attached
        assert h5py.h5ds.is_scale(b["x"].id)
        assert [s.name for s in b["entry/data/data"].dims[2].values()] == ["/x"]
    _frames_are_b2nd(out, "entry/data/data")
    _frames_are_b2nd(out, "x")


def test_blocks_chunks_and_contiguous(sample: Path, tmp_path: Path) -> None:
    import blosc2
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import CodecChoice, ConvertOptions, convert

    out = tmp_path / "out.h5"
    opts = ConvertOptions(
        codec=CodecChoice(cname="lz4", clevel=3, filters=("bitshuffle",), blocks=(1, 16, 64)),
        chunks=(3, 45, 65),
        contiguous=True,
    )
    convert(sample, out, options=opts)
    with h5py.File(sample) as a, h5py.File(out) as b:
        d = b["entry/data/data"]
        assert d.chunks == (3, 45, 65)
        np.testing.assert_array_equal(a["entry/data/data"][()], d[()])
        _m, raw = d.id.read_direct_chunk((0, 0, 0))
        assert tuple(blosc2.ndarray_from_cframe(raw).blocks) == (1, 16, 64)
        assert b["contig"].chunks is not None
        np.testing.assert_array_equal(a["contig"][()], b["contig"][()])
    _frames_are_b2nd(out, "contig")


@pytest.mark.parametrize("max_error", [1, 15, 100])
def test_itrunc_bound(tmp_path: Path, max_error: int) -> None:
    import h5py
    import hdf5plugin

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (4, 64, 80), dtype="u2")
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=data, chunks=(2, 32, 80), **hdf5plugin.Blosc2())
        f.create_dataset("be", data=data.astype(">u2"), chunks=(2, 32, 80))  # big-endian words
        f.create_dataset("f", data=data.astype("f4"), chunks=(2, 32, 80))
    convert(src, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=max_error)))
    with h5py.File(out) as f:
        got = f["d"][()].astype(np.int64)
        got_be = f["be"][()].astype(np.int64)
        np.testing.assert_array_equal(f["f"][()], data.astype("f4"))  # floats stay lossless
    for values in (got, got_be):
        err = np.abs(values - data)
        assert err.max() <= max_error
        assert err.max() > 0  # really lossy


def test_interrupted_run_leaves_no_file(sample: Path, tmp_path: Path) -> None:
    from b2store.convert import convert

    out = tmp_path / "out.h5"
    out.write_bytes(b"previous content")

    def boom(path: str, n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(sample, out, on_chunk=boom)
    assert out.read_bytes() == b"previous content"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "sample.h5"]  # no temp left


def test_auto_tuner_scores(tmp_path: Path) -> None:
    from b2store.convert import tune

    rng = np.random.default_rng(0)
    smooth = (np.add.outer(np.arange(64), np.arange(256)) * 3).astype("u2")[None].repeat(4, 0)
    noisy = smooth + rng.integers(0, 8, smooth.shape, dtype="u2")
    best_ratio = tune([noisy], tradeoff=1.0)
    best_speed = tune([noisy], tradeoff=0.0)
    ratios = {label: r for label, r, _t, _s in best_ratio.table}
    assert best_ratio.ratio == pytest.approx(max(ratios.values()))
    assert len(best_ratio.table) >= 5
    assert best_speed.seconds <= min(t for _l, _r, t, _s in best_speed.table) * 1.0001


def test_auto_end_to_end(sample: Path, tmp_path: Path) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import ConvertOptions, convert

    msgs: list[str] = []
    out = tmp_path / "out.h5"
    rep = convert(sample, out, options=ConvertOptions(auto=True, tradeoff=0.7), log=msgs.append)
    assert any("--auto chose" in m and "/entry/data/data" in m for m in msgs)
    assert next(d for d in rep.datasets if d.path == "/entry/data/data").codec
    with h5py.File(sample) as a, h5py.File(out) as b:
        np.testing.assert_array_equal(a["entry/data/data"][()], b["entry/data/data"][()])


@requires_j2k
def test_j2k_ratio(tmp_path: Path) -> None:
    import h5py
    import hdf5plugin

    from b2store.codecs.grok import Grok
    from b2store.convert import CodecChoice, ConvertOptions, convert

    y, x = np.mgrid[:128, :128]
    rng = np.random.default_rng(3)
    img = (20000 + 5000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    data = np.stack([img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(4)])
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=data, chunks=(2, 128, 128), **hdf5plugin.Blosc2())
    convert(src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)))
    with h5py.File(out) as f:
        d = f["d"]
        _m, raw = d.id.read_direct_chunk((0, 0, 0))
        got = Grok().decode(raw).view("u2").reshape(d.chunks)
        stored = d.id.get_storage_size()
    err = np.abs(got.astype(np.int64) - data[:2])
    assert 0 < err.max() < 2000
    assert data.nbytes / stored > 5


@requires_j2k
def test_j2k_skips_datasets_it_cannot_code(tmp_path: Path) -> None:
    """A NeXus-like file holds angles (1-D floats) and signed images beside the projections:
    JPEG 2000 codes the projections, the others are stored lossless (the run does not fail)."""
    import h5py
    import hdf5plugin

    from b2store.codecs.grok import Grok
    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(5)
    y, x = np.mgrid[:64, :64]
    img = (20000 + 5000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    proj = np.stack([img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(4)])
    others = {
        "angles": np.linspace(0, 180, 400, dtype="f8"),
        "signed": rng.integers(-300, 300, (4, 64, 64)).astype("i2"),
        "narrow": rng.integers(0, 4000, (64, 8)).astype("u2"),
    }
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("proj", data=proj, chunks=(2, 64, 64), **hdf5plugin.Blosc2())
        for name, arr in others.items():
            f.create_dataset(name, data=arr, chunks=True, **hdf5plugin.Blosc2())
    said: list[str] = []
    convert(src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)), log=said.append)
    with h5py.File(out) as f:
        for name, arr in others.items():
            np.testing.assert_array_equal(f[name][()], arr)
        _m, raw = f["proj"].id.read_direct_chunk((0, 0, 0))
        got = Grok().decode(raw).view("u2").reshape(2, 64, 64)
    assert 0 < np.abs(got.astype(np.int64) - proj[:2]).max() < 2000
    skipped = [m for m in said if "JPEG 2000 not applied" in m]
    assert len(skipped) == 3, said
    assert any("int16 is not uint8/uint16" in m for m in skipped)
    assert any("16 x 16" in m for m in skipped)


def test_bad_options() -> None:
    from b2store.convert import CodecChoice, ConvertError, ConvertOptions

    with pytest.raises(ConvertError, match=r"inclusive range \(0, 9\)\. Got 17 instead"):
        CodecChoice(clevel=17)
    with pytest.raises(ConvertError, match="codec name"):
        CodecChoice(cname="snappy")
    with pytest.raises(ConvertError, match="at most one"):
        CodecChoice(itrunc_max_error=3, j2k_ratio=4)
    with pytest.raises(ConvertError, match="tradeoff"):
        ConvertOptions(tradeoff=1.5)
    with pytest.raises(ValueError):
        CodecChoice(filters=("zigzag",))


def test_same_file_refused(sample: Path) -> None:
    from b2store.convert import ConvertError, convert

    with pytest.raises(ConvertError, match="input file"):
        convert(sample, sample)


def test_raw_fast_path_and_hdf5_fallback(tmp_path: Path) -> None:
    """Chunks b2store can decode are read raw (masks included); others go through HDF5."""
    import h5py
    import hdf5plugin

    from b2store.convert import convert

    rng = np.random.default_rng(5)
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        noise = rng.integers(0, 2**32, (64, 64), dtype="u4")
        noise[:32, :32] = 7  # one compressible chunk, three stored raw with filter mask 1
        f.create_dataset("lzf", data=noise, chunks=(32, 32), compression="lzf")
        f.create_dataset("be", data=np.arange(500, dtype=">i4"), chunks=(64,), shuffle=True,
                         compression="gzip")  # fmt: skip
        f.create_dataset("b2", data=rng.normal(size=(4, 50, 70)), chunks=(2, 25, 70),
                         **hdf5plugin.Blosc2(cname="lz4"))  # fmt: skip
        f.create_dataset("so", data=np.arange(300, dtype="i4"), chunks=(50,), scaleoffset=0)
    with h5py.File(src) as f:
        masks: list[int] = []
        f["lzf"].id.chunk_iter(lambda i: masks.append(i.filter_mask))
    assert sorted(set(masks)) == [0, 1]
    rep = {d.path: d for d in convert(src, out).datasets}
    for name in ("/lzf", "/be", "/b2"):
        assert "decoded from raw bytes" in rep[name].note, rep[name]
    assert "raw bytes" not in rep["/so"].note  # scaleoffset: read through HDF5
    with h5py.File(src) as a, h5py.File(out) as b:
        for k in ("lzf", "be", "b2", "so"):
            np.testing.assert_array_equal(a[k][()], b[k][()])
            assert b[k].dtype == a[k].dtype


def test_links_are_kept(tmp_path: Path) -> None:
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("g/d", data=np.arange(100), chunks=(10,))
        f["hard"] = d
        f["soft"] = h5py.SoftLink("/g/d")
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
        f["g/sub/dangling"] = h5py.SoftLink("/nope")
    convert(src, out)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["hard"][()], np.arange(100))
        np.testing.assert_array_equal(f["soft"][()], np.arange(100))
        assert f["hard"].id == f["g/d"].id  # still one object
        assert f.get("soft", getlink=True).path == "/g/d"
        ext = f.get("ext", getlink=True)
        assert (ext.filename, ext.path) == ("other.h5", "/x")
        assert f.get("g/sub/dangling", getlink=True).path == "/nope"


def test_dtypes(tmp_path: Path) -> None:
    """Numeric dtypes (bool, complex, big-endian) are converted; compound and strings copied."""
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    cmp = np.array([(i, i * 1.5) for i in range(100)], dtype=[("a", "<i2"), ("b", "<f8")])
    with h5py.File(src, "w") as f:
        f.create_dataset("cmp", data=cmp, chunks=(30,))
        f.create_dataset("bool", data=np.arange(100) % 3 == 0, chunks=(30,))
        f.create_dataset("complex", data=np.arange(100) * (1 + 2j), chunks=(30,))
        f.create_dataset("str", data=np.array([b"abc", b"de"] * 50), chunks=(30,))
        f.create_dataset("be", data=np.arange(100, dtype=">f8").reshape(10, 10), chunks=(5, 5))
    rep = {d.path: d.action for d in convert(src, out).datasets}
    assert rep == {
        "/be": "converted", "/bool": "converted", "/complex": "converted",
        "/cmp": "copied", "/str": "copied",
    }  # fmt: skip
    with h5py.File(src) as a, h5py.File(out) as b:
        for k in a:
            assert b[k].dtype == a[k].dtype
            np.testing.assert_array_equal(a[k][()], b[k][()])


def test_auto_skips_constant_chunks(tmp_path: Path) -> None:
    """The tuner samples chunks with content, not the all-zero edges of sparse data."""
    from b2store.convert import ConvertOptions, convert
    from b2store.demo import SIZES, write_tomography

    src = tmp_path / "tomo.h5"
    write_tomography(src, SIZES["small"], progress=False)
    msgs: list[str] = []
    convert(
        src, tmp_path / "o.h5", options=ConvertOptions(auto=True, tradeoff=1.0), log=msgs.append
    )
    (line,) = [m for m in msgs if "--auto chose" in m]
    ratio = float(line.split("sample ratio ")[1].split(",")[0])
    assert ratio < 50, line  # an all-zero sample compresses thousands of times


def test_pytables_style_class_attribute_kept(tmp_path: Path) -> None:
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("arr", data=np.arange(40).reshape(4, 10), chunks=(2, 10))
        d.attrs["CLASS"] = np.bytes_(b"CARRAY")
        d.attrs["TITLE"] = np.bytes_(b"")
        d.attrs["NAME"] = np.bytes_(b"not a scale")
    convert(src, out)
    with h5py.File(out) as f:
        assert f["arr"].attrs["CLASS"] == b"CARRAY" and f["arr"].attrs["NAME"] == b"not a scale"
        assert "TITLE" in f["arr"].attrs


def test_netcdf4_stays_netcdf4(tmp_path: Path) -> None:
    """A netCDF-4 file converts to an identical Dataset (h5netcdf) that b2h5 also reads."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    from b2store.convert import ConvertOptions, convert

    ds = xr.Dataset(
        {"t": (("time", "y", "x"), np.random.default_rng(0).normal(size=(5, 30, 40)).astype("f4"))},
        coords={"time": np.arange(5), "y": np.linspace(0, 1, 30), "x": np.arange(40.0)},
        attrs={"title": "nc"},
    )
    ds["t"].attrs["units"] = "K"
    src, out = tmp_path / "in.nc", tmp_path / "out.nc"
    ds.to_netcdf(src, engine="h5netcdf", encoding={"t": {"chunksizes": (1, 30, 40)}})
    convert(src, out, options=ConvertOptions(contiguous=True))
    a = xr.open_dataset(src, engine="h5netcdf")
    b = xr.open_dataset(out, engine="h5netcdf")
    xr.testing.assert_identical(a, b)
    c = xr.open_zarr(f"b2h5::{out}")
    xr.testing.assert_equal(a.load(), c.load())


@requires_h5py
@requires_hdf5plugin
def test_variable_length_and_reference_datasets(tmp_path: Path) -> None:
    """Variable-length data is copied by value (HDF5's object copy left a netCDF-4 string
    variable's fill value behind: nothing could open the output); references are copied but
    cannot be rewritten, and the report says so."""
    netCDF4 = pytest.importorskip("netCDF4")
    xr = pytest.importorskip("xarray")
    import h5py

    from b2store.convert import ConvertOptions, convert

    src, out = tmp_path / "in.nc", tmp_path / "out.nc"
    with netCDF4.Dataset(src, "w") as nc:
        nc.createDimension("n", 3)
        v = nc.createVariable("names", str, ("n",))
        v[:] = np.array(["a", "bb", "ccc"], dtype=object)
        nc.createVariable("t", "f4", ("n",))[:] = [1.0, 2.0, 3.0]
    convert(src, out, options=ConvertOptions())
    xr.testing.assert_identical(
        xr.open_dataset(src, engine="h5netcdf").load(), xr.open_dataset(out, engine="h5netcdf")
    )
    src, out = tmp_path / "refs.h5", tmp_path / "refs_out.h5"
    vint = h5py.vlen_dtype(np.int32)
    with h5py.File(src, "w") as f:
        a = f.create_dataset("a", data=np.arange(10), chunks=(5,))
        f.create_dataset("r", shape=(1,), dtype=h5py.ref_dtype)[0] = a.ref
        c = f.create_dataset("c", shape=(1,), dtype=np.dtype([("i", "i4"), ("r", h5py.ref_dtype)]))
        c[0] = (1, a.ref)
        v = f.create_dataset("v", shape=(2,), dtype=vint)  # equal lengths: read back as 2-D
        v[0], v[1] = np.array([1, 2], "i4"), np.array([3, 4], "i4")
        f.create_dataset("u", shape=(2,), dtype=vint)  # never written
    report = convert(src, out, options=ConvertOptions())
    notes = {d.path: d.note for d in report.datasets}
    assert "references are not rewritten" in notes["/r"]
    assert "references are not rewritten" in notes["/c"]  # not copied by value (raw addresses)
    with h5py.File(out) as f:
        assert [list(x) for x in f["v"][()]] == [[1, 2], [3, 4]]
        assert [len(x) for x in f["u"][()]] == [0, 0]


@requires_h5py
@requires_hdf5plugin
def test_rechunked_negative_zero_is_kept(tmp_path: Path) -> None:
    """Chunks equal to the fill value are left unallocated: compared by bytes, so a chunk of
    -0.0 under a 0.0 fill is written (was: read back as +0.0)."""
    import h5py

    from b2store.convert import ConvertOptions, convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    data = np.array([-0.0] * 8 + [1.0] * 8)
    with h5py.File(src, "w") as f:
        f.create_dataset("z", data=data, chunks=(8,), compression="gzip")
    convert(src, out, options=ConvertOptions(chunks=(4,)))
    with h5py.File(out) as f:
        assert f["z"][()].tobytes() == data.tobytes()
