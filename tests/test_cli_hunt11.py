"""Regressions found by the eleventh session's hunt through ``b2store info / convert / refs`` on
real-world files, each run as a user types it (``python3 -m b2store ...``) where that matters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._cli_files import run_b2store as run
from tests.conftest import requires_h5py, requires_hdf5plugin

pytest.importorskip("click")

pytestmark = [requires_h5py, requires_hdf5plugin]


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    """The single ``Error: …`` line of a refused run (no traceback)."""
    assert res.returncode != 0, res.stdout
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr, res.stderr
    assert lines and lines[-1].startswith("Error: "), res.stderr
    return lines[-1]


def _linked_file(tmp_path: Path) -> Path:
    """Hard, soft and external links (resolving and dangling), a group reached twice and a link
    back to an enclosing group."""
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as o:
        o.create_dataset("ext/data", data=np.arange(6, dtype="i2"))
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("a/data", data=np.arange(10, dtype="f4"), chunks=(5,))
        f["b/hard"] = d  # a second hard link to one dataset
        f["b/soft"] = h5py.SoftLink("/a/data")
        f["b/ext"] = h5py.ExternalLink("other.h5", "/ext/data")
        f["b/gone"] = h5py.SoftLink("/nowhere")
        f["b/ext_gone"] = h5py.ExternalLink("missing.h5", "/x")
        f["c"] = f["a"]  # the group /a reached again
        f["a/up"] = h5py.SoftLink("/a")  # back to the enclosing group
    return path


def test_info_lists_every_link_as_b2h5_does(tmp_path: Path) -> None:
    """``info FILE`` walked with h5py's ``visit``: each object once, no soft or external link.
    A dataset hard-linked at a second path, or reached through a link, was missing (the Diamond
    k11 master of the corpus: 262 of the 484 datasets ``info b2h5::`` lists) and its group
    looked empty. Now every path is listed; dangling links say so."""
    from b2store.inspect import inspect_path

    path = _linked_file(tmp_path)
    nodes = {n.path: n for n in inspect_path(str(path))}
    for alias in ("/b/hard", "/b/soft"):
        assert nodes[alias].kind == "dataset"
        assert nodes[alias].shape == (10,) and nodes[alias].direct
        assert nodes[alias].chunks == (5,)
    assert nodes["/b/ext"].kind == "dataset" and nodes["/b/ext"].shape == (6,)
    assert nodes["/b/ext"].reason == (
        "/b/ext is an external link to other.h5:/ext/data: b2h5 presents it with "
        "follow_external_links=True"
    )
    assert nodes["/b/gone"].kind == "link" and "soft link to /nowhere" in nodes["/b/gone"].reason
    assert not nodes["/b/gone"].direct
    assert "missing.h5:/x does not resolve" in nodes["/b/ext_gone"].reason
    assert nodes["/c"].kind == "group" and "/a" in nodes["/c"].reason
    assert "enclosing group" in nodes["/a/up"].reason
    # the same datasets as the b2h5 view presents
    view = inspect_path(f"b2h5::file://{path}")
    b2h5 = {n.path for n in view if n.kind == "dataset"}
    links = {n.path for n in view if n.kind == "link"}  # left out by the view, as links
    assert {"/b/ext", "/b/gone", "/b/ext_gone", "/a/up"} <= links, links
    assert {"/a/data", "/b/hard", "/b/soft"} <= b2h5
    assert {p for p, n in nodes.items() if n.kind == "dataset"} >= b2h5 - {"/c/data"}

    res = run("info", str(path))
    assert res.returncode == 0, res.stderr
    assert "soft  (10,)  float32" in res.stdout
    assert "gone  [NOT direct: soft link to /nowhere does not resolve]" in res.stdout
    assert "c/  [the group listed at /a" in res.stdout
    res = run("info", "--json", str(path))
    assert {d["path"] for d in json.loads(res.stdout)} == set(nodes)


def test_convert_refuses_chunks_of_a_rank_no_dataset_has(tmp_path: Path) -> None:
    """``--chunks 2,2,2`` on a file of 2-D datasets rechunked nothing and said nothing (exit 0,
    the old chunks kept). Now it is refused, and a dataset of another rank in a mixed file gets a
    line, as ``--blocks`` does."""
    import h5py

    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("two", data=np.arange(600, dtype="i4").reshape(20, 30), chunks=(10, 10))
    out = tmp_path / "out.h5"
    line = one_line_error(run("convert", str(src), str(out), "--chunks", "2,2,2"))
    assert "Expected chunks of the rank of a dataset" in line and "(2, 2, 2)" in line, line
    assert "2 dimensions" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5"]  # no output, no leftover

    with h5py.File(src, "a") as f:
        f.create_dataset("one", data=np.arange(50, dtype="i4"), chunks=(7,))
    res = run("convert", str(src), str(out), "--chunks", "5,6")
    assert res.returncode == 0, res.stderr
    assert "/one: --chunks (5, 6) has another rank than (50,): chunks (7,)" in res.stderr
    with h5py.File(out) as f:
        assert f["two"].chunks == (5, 6) and f["one"].chunks == (7,)
        assert np.array_equal(f["two"][()], np.arange(600).reshape(20, 30))


def test_info_of_a_folder_says_so(tmp_path: Path) -> None:
    """``info FOLDER`` said "is not an HDF5 file (no HDF5 signature)"."""
    line = one_line_error(run("info", str(tmp_path)))
    assert line == f"Error: {tmp_path} is a folder: give an HDF5 file"


def test_info_b2h5_view_says_zero_bytes_for_unallocated_data(tmp_path: Path) -> None:
    """Through a ``b2h5`` view (``info http://…/f.nc``, ``info b2h5::…``) a dataset with no
    chunk written showed ``stored=?`` (unknown, as for Caterva2), where ``info FILE`` says 0 B:
    the view lists every chunk it has."""
    import h5py

    from b2store.inspect import inspect_path

    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("none", shape=(10, 10), dtype="i4", chunks=(5, 5))
        f.create_dataset("some", data=np.arange(100, dtype="i4").reshape(10, 10), chunks=(5, 5))
    local = {n.path: n for n in inspect_path(str(path))}
    view = {n.path: n for n in inspect_path(f"b2h5::file://{path}")}
    assert local["/none"].stored == 0 and view["/none"].stored == 0
    assert view["/some"].stored == local["/some"].stored


def test_example_open_hdf5_with_xarray_takes_any_file_name(tmp_path: Path) -> None:
    """``python examples/open_hdf5_with_xarray.py a`` wrote ``a`` and then failed with a
    traceback ("HDF5 file not found: …/a:": fsspec reads the one-letter name in ``b2h5::a`` as a
    drive letter); a file in a missing folder gave h5py's traceback."""
    pytest.importorskip("xarray")
    script = Path(__file__).resolve().parents[1] / "examples" / "open_hdf5_with_xarray.py"

    def example(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )

    res = example("a")
    assert res.returncode == 0, res.stderr
    assert "values identical to h5py + hdf5plugin: OK" in res.stdout
    res = example("nodir/x.h5")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert (
        res.stderr.strip()
        == f"{tmp_path / 'nodir'}: no such folder: create it first or name another file"
    )


def test_refs_names_the_links_it_leaves_out_and_can_follow_them(tmp_path: Path) -> None:
    """``refs`` of a NeXus master (the Diamond k11 file of the corpus) left out every external
    link (its projections among them) without a word, with no way to export them. Now one
    warning line counts the links left out, and ``--follow-external-links`` exports what they
    reach (chunks pointing into the linked file)."""
    import fsspec
    import zarr

    path = _linked_file(tmp_path)
    res = run("refs", str(path), "-o", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"Warning: {path}: 3 links left out of the references (first: /b/ext")
    assert "2 of them external: pass --follow-external-links" in line, line

    res = run("refs", str(path), "-o", str(tmp_path / "f.json"), "--follow-external-links")
    assert res.returncode == 0, res.stderr
    assert "2 links left out" in res.stderr and "does not resolve" in res.stderr, res.stderr
    fs = fsspec.filesystem("reference", fo=str(tmp_path / "f.json"))
    group = zarr.open_group(fs.get_mapper(), mode="r", zarr_format=2)
    assert np.array_equal(group["b/ext"][...], np.arange(6, dtype="i2"))
    assert np.array_equal(group["b/soft"][...], np.arange(10, dtype="f4"))


@pytest.mark.parametrize(
    "args",
    [("convert", "IN", ""), ("convert", "IN", "new/"), ("refs", "IN", "-o", "")],
    ids=["convert-empty", "convert-trailing-slash", "refs-empty"],
)
def test_output_that_is_no_file_name_is_refused_first(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """``convert IN ""`` and ``convert IN new/`` converted the whole file, then failed to rename
    it ("[Errno 20] Not a directory: '….part' -> 'new/'"); with ``""`` (also ``refs -o ""``)
    the temporary file went to the folder above the current one."""
    import h5py

    work = tmp_path / "work"
    work.mkdir()
    with h5py.File(work / "in.h5", "w") as f:
        f.create_dataset("d", data=np.arange(100, dtype="i4"), chunks=(10,))
    line = one_line_error(run(*[a if a != "IN" else "in.h5" for a in args], cwd=work))
    assert line.startswith("Error: Expected an output"), line
    assert f"Got {args[-1]!r} instead." in line
    assert sorted(p.name for p in work.iterdir()) == ["in.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_info_text_keeps_one_line_per_node_for_names_with_newlines(tmp_path: Path) -> None:
    """A member name holding a newline and tabs (``dcm1_y_positioner\\n\\t\\t…`` in the Diamond
    k11 master of the corpus) split its ``info`` line in two."""
    import h5py

    from b2store.inspect import inspect_path, render_text

    path = tmp_path / "names.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("pos\n\t\t", data=np.arange(3))
        f.create_dataset("plain", data=np.arange(3))
    lines = render_text(inspect_path(str(path))).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("  plain  (3,)") and lines[2].startswith("  'pos\\n\\t\\t'  (3,)")


def test_info_gives_no_ratio_for_variable_length_data(tmp_path: Path) -> None:
    """Every vlen string showed ``ratio=0.50`` (8-byte pointers over 16-byte heap ids)."""
    import h5py

    from b2store.inspect import inspect_path

    path = tmp_path / "vlen.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("s", data="a long variable-length string", dtype=h5py.string_dtype())
    (node,) = [n for n in inspect_path(str(path)) if n.kind == "dataset"]
    assert node.ratio is None and node.stored == 16


def test_rechunking_reads_each_input_chunk_through_a_cache_that_holds_it(tmp_path: Path) -> None:
    """``--chunks`` read every output chunk through HDF5's default 1 MiB chunk cache: an input
    chunk larger than that was decoded again for each output chunk it overlaps (the corpus's
    Eiger frame, one 18 MB chunk, to ``--chunks 1,70,90``: 10.6 s, now 1.2 s; ``1,7,9`` did
    not finish in 10 minutes). The input is now reopened with a cache that holds the input
    chunks under one slab (or row, or chunk) of output chunks."""
    import h5py

    from b2store.convert import ConvertOptions, convert
    from b2store.convert._chunks import (
        RECHUNK_CACHE_BYTES,
        _rechunk_cache_bytes,
        _with_rechunk_cache,
    )

    # the whole dataset when it fits; else a slab of output chunks along axis 0; else a row...
    assert _rechunk_cache_bytes((1, 600, 500), (1, 600, 500), (1, 50, 50), 4) == 1_200_000
    mib8 = 8 * 2**20  # uint16 chunks of (16, 512, 512)
    slab = _rechunk_cache_bytes((64, 2048, 2048), (16, 512, 512), (1, 512, 512), 2)
    assert slab == 4 * 4 * mib8  # the input chunks under one output slab along axis 0
    row = _rechunk_cache_bytes((64, 4096, 4096), (16, 512, 512), (16, 100, 100), 2)
    assert row == 2 * 8 * mib8 <= RECHUNK_CACHE_BYTES  # output rows straddle 2 input rows
    assert _rechunk_cache_bytes((4,), (4,), (1,), 2**40) == 4 * 2**40  # at least one chunk

    src = tmp_path / "big_chunk.h5"
    data = np.random.default_rng(0).integers(0, 1000, (1, 600, 500), dtype="u4")
    with h5py.File(src, "w") as f:
        d = f.create_dataset("frame", data=data, chunks=(1, 600, 500), compression="gzip")
        d.attrs["units"] = "counts"
    with h5py.File(src) as f:
        reopened = _with_rechunk_cache(f["frame"], (1, 50, 50))
        assert reopened.id.get_access_plist().get_chunk_cache()[1] == 1_200_000
        assert np.array_equal(reopened[0, :50, :50], data[0, :50, :50])
    out = tmp_path / "out.h5"
    convert(src, out, options=ConvertOptions(chunks=(1, 50, 50)))
    with h5py.File(out) as f:
        assert f["frame"].chunks == (1, 50, 50) and f["frame"].attrs["units"] == "counts"
        assert np.array_equal(f["frame"][()], data)


def test_rechunk_cache_slots_stay_bounded_for_tiny_input_chunks(tmp_path: Path) -> None:
    """The rechunking cache asked HDF5 for 100 hash slots per input chunk it holds: input
    chunks of one u2 element gave 13 billion slots (5.4 GB of memory before a byte was read;
    u1 asked for 27 GB). Slots are now at most one per chunk of the dataset and at most
    :data:`RECHUNK_CACHE_SLOTS`."""
    import h5py

    from b2store.convert import ConvertOptions, convert
    from b2store.convert._chunks import (
        RECHUNK_CACHE_BYTES,
        RECHUNK_CACHE_SLOTS,
        _rechunk_cache_slots,
        _with_rechunk_cache,
    )

    n = 2**30  # u1 chunks of one element, 256 MiB of cache
    assert _rechunk_cache_slots((n,), (1,), RECHUNK_CACHE_BYTES, 1) == RECHUNK_CACHE_SLOTS + 1
    assert _rechunk_cache_slots((1000,), (1,), 1000, 2) == 1001  # one per chunk of the grid
    mib = 2**20  # 8 chunks of 1 MiB held: HDF5's 100 slots per chunk
    assert _rechunk_cache_slots((64 * mib,), (mib,), 8 * mib, 1) == 65

    src = tmp_path / "tiny_chunks.h5"
    data = np.arange(2**21, dtype="u1")
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=data, chunks=(64,))
    with h5py.File(src) as f:
        reopened = _with_rechunk_cache(f["d"], (2**20,))
        nslots, nbytes, _ = reopened.id.get_access_plist().get_chunk_cache()
        assert (nslots, nbytes) == (2**21 // 64 + 1, 2**21)  # was 3,276,801 slots
    out = tmp_path / "out.h5"
    convert(src, out, options=ConvertOptions(chunks=(2**20,)))
    with h5py.File(out) as f:
        assert f["d"].chunks == (2**20,) and np.array_equal(f["d"][()], data)


def test_refs_does_not_count_a_virtual_dataset_as_a_link(tmp_path: Path) -> None:
    """``refs`` told links from other notes by "does not resolve" anywhere in the note: a
    virtual dataset whose source file is gone ("source src.h5:s does not resolve") was
    warned about as "1 link left out of the references"."""
    import warnings

    import h5py

    from b2store.refs import hdf5_refs

    layout = h5py.VirtualLayout(shape=(10,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(tmp_path / "src.h5"), "s", shape=(10,))
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("v", layout)
        f["gone"] = h5py.SoftLink("/nowhere")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refs = hdf5_refs(path, unsupported="skip")
    (warning,) = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert warning.startswith(f"{path}: 1 link left out of the references (first: /gone:")
    assert "v/.zarray" not in refs["refs"]


@pytest.mark.parametrize("through", ["api", "cli"])
def test_convert_to_an_existing_folder_is_refused_first(tmp_path: Path, through: str) -> None:
    """``convert(src, "existing_folder")`` converted the whole file, then failed to rename the
    result onto the folder (the command line refused it already)."""
    import h5py

    from b2store.convert import ConvertError, convert

    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=np.arange(100, dtype="i4"), chunks=(10,))
    folder = tmp_path / "out"
    folder.mkdir()
    if through == "api":
        with pytest.raises(ConvertError, match="which is a folder"):
            convert(src, folder)
    else:
        line = one_line_error(run("convert", str(src), str(folder)))
        assert line.endswith(f"'{folder}' is a directory.")  # click's check
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "in.h5",
        "out",
    ]
