"""The ``b2store`` command line: info, convert, refs, demo, bench, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests._cli_files import run_b2store as run
from tests._cli_files import write_sample
from tests.conftest import has, requires_h5py, requires_hdf5plugin

click = pytest.importorskip("click")

pytestmark = [requires_h5py, requires_hdf5plugin]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.h5")


def test_info_text(sample: Path) -> None:
    res = run("info", str(sample))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "entry/" in out and "data/" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("data  "))
    assert "(6, 90, 130)" in line and "uint16" in line and "chunks=(2, 40, 64)" in line
    assert "filters=blosc2" in line and "blocks=" in line and "[direct]" in line
    assert "filters=lzf" in out and "filters=deflate" in out


def test_info_json(sample: Path) -> None:
    res = run("info", str(sample), "--json")
    assert res.returncode == 0, res.stderr
    nodes = {n["path"]: n for n in json.loads(res.stdout)}
    d = nodes["/entry/data/data"]
    assert d["shape"] == [6, 90, 130] and d["dtype"] == "uint16"
    assert d["chunks"] == [2, 40, 64] and d["filters"] == ["blosc2"]
    assert d["blocks"] is not None and len(d["blocks"]) == 3
    assert d["blosc2"].startswith("lz4-5")  # the sample is written with hdf5plugin.Blosc2(lz4)
    assert d["direct"] is True and d["stored"] > 0 and d["ratio"] > 1
    assert nodes["/entry"]["kind"] == "group"
    assert nodes["/sparse"]["filters"] == ["lzf"]
    assert nodes["/contig"]["layout"] == "contiguous"


def test_info_reports_why_not_direct(tmp_path: Path) -> None:
    import h5py

    p = tmp_path / "so.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("so", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0)
    res = run("info", str(p), "--json")
    assert res.returncode == 0, res.stderr
    (node,) = [n for n in json.loads(res.stdout) if n["path"] == "/so"]
    assert node["direct"] is False and "scaleoffset" in node["reason"]
    # references and compounds with variable-length fields: refused by refs/b2h5 too
    with h5py.File(p, "a") as f:
        f.create_dataset("r", shape=(1,), dtype=h5py.ref_dtype)[0] = f["so"].ref
        vl = np.dtype([("a", "i4"), ("s", h5py.string_dtype())])
        f.create_dataset("c", shape=(2,), dtype=vl)
    nodes = {n["path"]: n for n in json.loads(run("info", str(p), "--json").stdout)}
    assert nodes["/r"]["direct"] is False and "references" in nodes["/r"]["reason"]
    assert nodes["/c"]["direct"] is False and "variable-length" in nodes["/c"]["reason"]


def test_info_b2h5_url_lists_what_it_cannot_present(tmp_path: Path) -> None:
    """``info b2h5::FILE`` failed as a whole on the first unsupported dataset (the CLI cannot
    pass unsupported=); it now lists the others and says why that one is left out."""
    import h5py

    p = tmp_path / "mixed.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("ok", data=np.arange(100, dtype="i4"), chunks=(10,))
        f.create_dataset("so", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0)
    res = run("info", f"b2h5::{p}", "--json")
    assert res.returncode == 0, res.stderr
    nodes = {n["path"]: n for n in json.loads(res.stdout)}
    assert nodes["/ok"]["direct"] is True and nodes["/ok"]["shape"] == [100]
    assert nodes["/so"]["direct"] is False and "scaleoffset" in nodes["/so"]["reason"]
    assert "unsupported=" not in nodes["/so"]["reason"]
    text = run("info", f"b2h5::{p}").stdout
    assert "so  [NOT direct:" in text, text


def test_convert_then_refs_roundtrip(sample: Path, tmp_path: Path) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    out = tmp_path / "out.h5"
    res = run("convert", str(sample), str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "converted" in res.stdout
    with h5py.File(sample) as a, h5py.File(out) as b:
        for k in ("entry/data/data", "x", "sparse", "contig", "scalar"):
            np.testing.assert_array_equal(a[k][()], b[k][()])
    refs = tmp_path / "refs.json"
    res = run("refs", str(out), "-o", str(refs))
    assert res.returncode == 0, res.stderr
    assert json.loads(refs.read_text())["version"] == 1


def test_convert_auto_reports_choice(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "auto.h5"
    res = run("convert", str(sample), str(out), "--auto", "--tradeoff", "1", "-q")
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "/entry/data/data:" in ln)
    assert any(c in line for c in ("zstd", "lz4", "blosclz"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["info", "/no/such/file.h5"], "no such file"),
        (["convert", "/no/such/in.h5", "/tmp/x.h5"], "no such file"),
        (["convert", "SAMPLE", "OUT", "--clevel", "17"], "(0, 9)"),
        (["convert", "SAMPLE", "OUT", "--cname", "snappy"], "'snappy' is not one of 'blosclz'"),
        (["convert", "SAMPLE", "OUT", "--clevel", "x"], "'x' is not a valid integer"),
        (["convert", "SAMPLE", "OUT", "--blocks", "a,b"], "integers"),
        (["convert", "SAMPLE", "OUT", "--tradeoff", "2"], "tradeoff"),
        (["convert", "SAMPLE", "OUT", "--j2k-ratio", "4", "--j2k-psnr", "70"], "at most one"),
        (["convert", "SAMPLE", "/no/such/dir/out.h5"], "does not exist"),
        (["info", "NOTHDF5"], "not an HDF5 file"),
        (["refs", "NOTHDF5", "-o", "OUT"], "not an HDF5 file"),
        (["refs", "SAMPLE"], "Missing option"),
        (["demo", "--size", "huge"], "'huge' is not one of 'small', 'medium', 'full'"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_bad_arguments_give_one_line(
    args: list[str], needle: str, sample: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 10)
    subst = {"SAMPLE": str(sample), "OUT": str(tmp_path / "o.h5"), "NOTHDF5": str(junk)}
    res = run(*[subst.get(a, a) for a in args])
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("Error:") and needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "o.h5").exists()


def test_unsupported_dataset_is_one_line(tmp_path: Path) -> None:
    import h5py

    p = tmp_path / "so.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("so", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0)
    res = run("refs", str(p), "-o", str(tmp_path / "r.json"))
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1 and "scaleoffset" in res.stderr
    res = run("refs", str(p), "-o", str(tmp_path / "r.json"), "--unsupported", "skip")
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_demo_small(tmp_path: Path) -> None:
    pytest.importorskip("xarray")
    pytest.importorskip("dask")
    res = run("demo", "--size", "small", "--cache-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "agree" in res.stdout and "h5py + hdf5plugin" in res.stdout
    assert "xr.open_dataset(engine='b2h5', chunks={}) + dask" in res.stdout  # the fast path too
    assert (tmp_path / "demo-tomography-small.h5").is_file()
    again = run("demo", "--size", "small", "--cache-dir", str(tmp_path))
    assert again.returncode == 0 and "reusing" in again.stdout


def test_bench_bad_name(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text("import sys; print('ran', sys.argv[1:])\n")
    res = run("bench", "--dir", str(tmp_path), "--only", "two")
    assert res.returncode == 1 and "Expected --only names from one" in res.stderr
    assert "Got two instead" in res.stderr
    res = run("bench", "--dir", str(tmp_path), "--size", "small")
    assert res.returncode == 0, res.stderr
    assert "ran []" in res.stdout


def test_bench_passes_the_size_a_script_declares(tmp_path: Path) -> None:
    """A script gets ``--size SIZE`` if its parser declares ``--size``, ``--small`` if it
    declares that flag (for size small), else nothing; all get ``B2STORE_BENCH_SIZE``. Only
    real option declarations count: ``--size`` in a comment, a docstring or a help text used
    to get it passed to a script that then failed on the unknown option."""
    report = "print('ran', sys.argv[1:], os.environ['B2STORE_BENCH_SIZE'])"
    (tmp_path / "a_sized.py").write_text(
        "import argparse, os, sys\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--size', choices=['small', 'full'])\n"
        f"p.parse_args()\n{report}\n"
    )
    (tmp_path / "b_flag.py").write_text(
        "import argparse, os, sys\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--repeat', type=int)\n"
        "p.add_argument('-s', '--small', action='store_true', help='like --size small')\n"
        f"p.parse_args()\n{report}\n"
    )
    (tmp_path / "c_plain.py").write_text(
        '"""Run with --size small (docstring)."""\n'
        "import argparse, os, sys  # '--size'\n"
        "p = argparse.ArgumentParser(description='no --size here')\n"
        f"p.parse_args()\n{report}\n"
    )
    res = run("bench", "--dir", str(tmp_path), "--size", "small")
    assert res.returncode == 0, res.stderr
    assert "ran ['--size', 'small'] small" in res.stdout
    assert "ran ['--small'] small" in res.stdout
    assert "ran [] small" in res.stdout
    res = run("bench", "--dir", str(tmp_path), "--size", "full")
    assert res.returncode == 0, res.stderr
    assert "ran ['--size', 'full'] full" in res.stdout
    assert res.stdout.count("ran [] full") == 2  # the flag script runs at its own size


def test_cli_choices_come_from_the_library() -> None:
    """--cname lists the b2nd codec's names (any case), demo --size the demo's sizes."""
    from b2store._cli_app import convert, demo
    from b2store.codecs._common import CNAMES
    from b2store.demo import SIZES

    opts = {o.name: o for o in convert.params}
    assert list(opts["cname"].type.choices) == list(CNAMES)  # type: ignore[attr-defined]
    assert opts["cname"].type.convert("ZSTD", None, None) == "zstd"
    sizes = {o.name: o for o in demo.params}["size"]
    assert list(sizes.type.choices) == list(SIZES)  # type: ignore[attr-defined]
    for name, size in SIZES.items():
        assert f"{name} {size.nbytes / 1e6:.0f} MB" in (sizes.help or "")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["convert", "--help"]])
def test_command_line_starts_without_numpy(args: list[str]) -> None:
    """The --cname and demo --size choices come from standard-library tables
    (b2store.codecs._names, b2store._demo_sizes): starting the command line loads no numpy
    (importing it for them cost every command ~60 ms)."""
    code = (
        "import sys\n"
        "from b2store.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([m for m in ('numpy', 'h5py', 'blosc2', 'numcodecs') if m in sys.modules])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_info_caterva2_url(tmp_path: Path) -> None:
    import shutil

    if shutil.which("cat2-server") is None:
        pytest.skip("cat2-server is not installed: pip install 'caterva2[server]'")
    pytest.importorskip("aiohttp")
    import blosc2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        from caterva2_with_cache import start_server
    finally:
        sys.path.pop(0)
    proc, host, public = start_server(tmp_path)
    try:
        (public / "dir").mkdir()
        a = np.arange(6000, dtype="u2").reshape(20, 300)
        blosc2.asarray(a, chunks=(10, 300), urlpath=str(public / "dir" / "a.b2nd"), mode="w")
        res = run("info", f"caterva2://{host}/@public/dir", "--json")
        assert res.returncode == 0, res.stderr
        (node,) = [n for n in json.loads(res.stdout) if n["kind"] == "dataset"]
        assert node["path"] == "/a.b2nd" and node["shape"] == [20, 300]
        assert node["chunks"] == [10, 300] and node["dtype"] == "uint16"
        # chunk sizes are unknown until fetched: no made-up ratio from the metadata alone
        assert node["stored"] is None and node["ratio"] is None
        res = run("info", f"caterva2://{host}/@public/dir")
        assert res.returncode == 0 and "stored=?" in res.stdout, res.stdout
        res = run("info", f"caterva2://{host}/@public/nope")
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
        # the server presents an HDF5 file as a group: its URL ending in .h5 was sent to the
        # b2h5 view, which failed ("... is a Zarr group or a dataset's view, not a key")
        write_sample(public / "dir" / "s.h5")
        res = run("info", f"caterva2://{host}/@public/dir/s.h5")
        assert res.returncode == 0, res.stderr
        assert "entry/" in res.stdout and "data  (6, 90, 130)  uint16" in res.stdout, res.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_convert_killed_leaves_no_file(tmp_path: Path, sig: str) -> None:
    """A convert stopped by a signal exits non-zero and leaves neither OUT nor a temporary file."""
    import os
    import signal
    import time

    from b2store.demo import DemoSize, write_tomography

    src = tmp_path / "src" / "big.h5"
    write_tomography(src, DemoSize(shape=(64, 256, 512), chunks=(1, 256, 512)), progress=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "b2store", "convert", str(src), str(out), "--threads", "1",
         "--cname", "zstd", "--clevel", "9", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("convert finished before it could be interrupted")
    time.sleep(0.2)
    os.kill(proc.pid, getattr(signal, sig))
    _stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("convert finished before the signal arrived")
    assert "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []  # no OUT, no temporary file


@requires_h5py
@pytest.mark.parametrize(
    "args",
    [
        ["convert", "SAMPLE", "OUT", "--clevel", "10"],
        ["convert", "SAMPLE", "OUT", "--threads", "0"],
        ["convert", "SAMPLE", "OUT", "--filters", "foo"],
        ["refs", "SAMPLE", "-o", "OUT", "--inline-threshold", "-5"],
        # the b2nd encoder refused 3 filters at the first dataset (exit 1, after work began)
        ["convert", "SAMPLE", "OUT", "--filters", "shuffle,delta,bytedelta"],
        ["demo", "--size", "small", "--workers", "0", "--cache-dir", "OUT"],  # taken as default
        ["demo", "--size", "small", "--workers", "-1", "--cache-dir", "OUT"],  # failed late
        # empty fields were dropped: "4,,64" rechunked the 2-D datasets, "1,x" became (1,)
        ["convert", "SAMPLE", "OUT", "--chunks", "4,,64"],
        ["convert", "SAMPLE", "OUT", "--blocks", "1,x"],
        ["convert", "SAMPLE", "OUT", "--blocks", "1,2,"],
    ],
)
def test_bad_option_values_are_usage_errors(args: list[str], sample: Path, tmp_path: Path) -> None:
    """docs/cli.md: exit status 2 for usage errors (was 1 for values checked after parsing)."""
    subst = {"SAMPLE": str(sample), "OUT": str(tmp_path / "o.out")}
    res = run(*[subst.get(a, a) for a in args])
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "o.out").exists()


def test_refs_command_names_its_own_option_for_unsupported_datasets(tmp_path: Path) -> None:
    """The error told command-line users to "pass unsupported='skip'", a Python argument."""
    import subprocess
    import sys

    import h5py

    src = tmp_path / "null.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("null", data=h5py.Empty("f4"))
        f.create_dataset("d", data=np.arange(3))
    res = subprocess.run(
        [sys.executable, "-m", "b2store", "refs", str(src), "-o", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "--unsupported skip" in res.stderr and "unsupported='skip'" not in res.stderr


def test_no_progress_bars_when_stderr_is_not_a_terminal(sample: Path, tmp_path: Path) -> None:
    """tqdm bars (carriage returns, "chunk/s") went into logs and pipes; the per-dataset lines
    are what belongs there."""
    res = run("convert", str(sample), str(tmp_path / "o.h5"))
    assert res.returncode == 0, res.stderr
    assert "/entry/data/data: converted" in res.stderr
    assert "\r" not in res.stderr and "chunk/s" not in res.stderr and "%|" not in res.stderr


def test_refs_warnings_are_one_line_each(tmp_path: Path) -> None:
    """--unsupported warn printed Python warnings: the source file and line of b2store's index,
    and advice to pass the Python argument unsupported='skip'."""
    import h5py

    src = tmp_path / "null.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("null", data=h5py.Empty("f4"))
        f.create_dataset("d", data=np.arange(3))
    res = run("refs", str(src), "-o", str(tmp_path / "r.json"), "--unsupported", "warn")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: ") and "/null" in lines[0], lines
    assert "UserWarning" not in res.stderr and "unsupported=" not in res.stderr


def test_unreadable_input_is_named(tmp_path: Path, sample: Path) -> None:
    """A truncated HDF5 file gave "Error: Unable to synchronously open file (truncated file: …)"
    from info and convert, naming no file."""
    cut = tmp_path / "cut.h5"
    cut.write_bytes(sample.read_bytes()[:5000])
    for args in (["info", str(cut)], ["convert", str(cut), str(tmp_path / "o.h5")]):
        res = run(*args)
        assert res.returncode == 1, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and str(cut) in lines[0] and "not a readable HDF5" in lines[0]
    assert not (tmp_path / "o.h5").exists()


def test_convert_names_the_dataset_of_a_corrupt_chunk(tmp_path: Path) -> None:
    """A chunk HDF5 cannot decode stopped convert with "Can't synchronously read data (filter
    returned failure during read)", naming no dataset."""
    import h5py
    import hdf5plugin

    src = tmp_path / "bad.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("ok", data=np.arange(100.0), chunks=(10,))
        f.create_dataset(
            "grp/bad", data=np.random.default_rng(0).random((40, 40)), chunks=(8, 8),
            **hdf5plugin.Blosc2(),
        )  # fmt: skip
        offset = f["grp/bad"].id.get_chunk_info(3).byte_offset
    raw = bytearray(src.read_bytes())
    raw[offset + 40 : offset + 80] = b"\xff" * 40
    src.write_bytes(bytes(raw))
    res = run("convert", str(src), str(tmp_path / "o.h5"), "-q")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: /grp/bad: "), lines
    assert not (tmp_path / "o.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.h5"]


def _file_size_limit(limit: int) -> None:
    """In the child: writes past ``limit`` bytes fail (EFBIG) instead of killing the process."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_demo_on_a_failing_disk_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """When HDF5's writes failed (disk full), its close failed too and the library crashed the
    interpreter at exit (segmentation fault, exit status 139, tracebacks from h5py's dealloc)."""
    import os

    pytest.importorskip("xarray")
    res = subprocess.run(
        [sys.executable, "-m", "b2store", "demo", "--size", "small", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
        preexec_fn=lambda: _file_size_limit(100_000),
    )
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_out_of_room_names_the_output(tmp_path: Path) -> None:
    """A write refused for want of room (full disk, quota, file size limit) gave "Error:
    RuntimeError: Can't decrement id ref count (…)" or "[Errno 27] File too large", naming
    neither the output nor what to do."""
    import os

    import h5py

    src = tmp_path / "src" / "big.h5"
    src.parent.mkdir()
    with h5py.File(src, "w") as f:
        data = np.random.default_rng(0).random((200, 1000))
        f.create_dataset("x", data=data, chunks=(50, 1000))
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        ["convert", str(src), str(out / "o.h5"), "-q"],
        ["refs", str(src), "-o", str(out / "o.json"), "--inline-threshold", "100000000"],
        ["refs", str(src), "-o", str(out / "o.parq"), "--inline-threshold", "100000000"],
    ]
    if not has("pandas") or not has("pyarrow"):
        cases.pop()
    for args in cases:
        res = subprocess.run(
            [sys.executable, "-m", "b2store", *args],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=300,
            preexec_fn=lambda: _file_size_limit(200_000),
        )
        assert res.returncode == 1, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "File too large while writing" in lines[0], lines
        assert f"while writing {out}/o." in lines[0], lines
        assert list(out.iterdir()) == []  # no partial output, no temporary


def test_convert_and_demo_with_hdf5_plugin_path_set(sample: Path, tmp_path: Path) -> None:
    """docs/cli.md has netCDF-C users set HDF5_PLUGIN_PATH=hdf5plugin.PLUGIN_PATH. HDF5 then
    loaded the Blosc2 filter from there (hdf5plugin leaves a filter it finds registered alone),
    and that copy fails to create datasets: every convert and demo stopped with "Unable to
    synchronously create dataset (error during user callback)"."""
    import h5py
    import hdf5plugin

    env = {"HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH}
    out = tmp_path / "o.h5"
    res = run("convert", str(sample), str(out), "-q", env=env)
    assert res.returncode == 0, res.stderr
    with h5py.File(sample) as f, h5py.File(out) as g:
        np.testing.assert_array_equal(g["entry/data/data"][()], f["entry/data/data"][()])
        assert g["entry/data/data"].id.get_create_plist().get_filter(0)[0] == 32026  # Blosc2
    pytest.importorskip("xarray")
    res = run("demo", "--size", "small", "--cache-dir", str(tmp_path / "cache"), env=env)
    assert res.returncode == 0, res.stderr
    assert "agree" in res.stdout


def test_convert_reads_other_hdf5plugin_filters_with_hdf5_plugin_path_set(
    corpus: Path, tmp_path: Path
) -> None:
    """With HDF5_PLUGIN_PATH=hdf5plugin.PLUGIN_PATH, HDF5 loads every filter hdf5plugin ships
    from that folder, and those copies fail where hdf5plugin's own work (not only Blosc2's
    dataset creation): the H5Z-ZFP 0.2 file of the corpus stopped the convert with
    "/compressed: Can't synchronously read data (filter returned failure during read)". Now
    hdf5plugin's filters are registered from hdf5plugin when the variable names its folder."""
    import h5py
    import hdf5plugin

    src, out = corpus / "hdf5plugin_zfp_be.h5", tmp_path / "o.h5"
    with h5py.File(src) as f:
        want = f["compressed"][()]  # what hdf5plugin's own ZFP reads
    res = run("convert", str(src), str(out), "-q", env={"HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH})
    assert res.returncode == 0, res.stderr
    with h5py.File(out) as g:
        np.testing.assert_array_equal(g["compressed"][()], want)


def test_sigterm_inside_a_weakref_callback_still_interrupts() -> None:
    """SIGTERM became a KeyboardInterrupt raised wherever the main thread was; inside a weakref
    callback (h5py frees objects all the time) Python ignores it ("Exception ignored in ..."),
    and a demo run terminated while writing went on to the end and exited 0. A swallowed
    interrupt is now delivered again."""
    import signal
    import weakref

    from b2store._cli_app import _sigterm_as_interrupt

    class Thing:
        pass

    def callback(_ref: object) -> None:
        signal.raise_signal(signal.SIGTERM)  # the handler runs in here: its raise is ignored
        sum(range(100))

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), _sigterm_as_interrupt():
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing
        deadline = time.monotonic() + 10  # signalled again within 50 ms
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert ref() is None
    assert signal.getsignal(signal.SIGTERM) == previous


def test_demo_cache_dir_expands_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`b2store demo --cache-dir=~/cache` (no shell expansion after "=") wrote into a folder
    named "~" in the working directory; $B2STORE_CACHE was expanded, the option was not."""
    from b2store.demo import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir("~/cache") == tmp_path / "cache"
    monkeypatch.setenv("B2STORE_CACHE", "~/env")
    assert cache_dir() == tmp_path / "env"


def test_refs_url_names_where_the_file_is_read(tmp_path: Path) -> None:
    """``--url`` (``write_refs(url=)``) writes the file's later location into the references:
    only :func:`b2store.refs.hdf5_refs` took it, so references for a file to be served
    elsewhere could not be made from the command line."""
    import shutil

    import fsspec
    import h5py
    import zarr

    src = tmp_path / "here" / "scan.h5"
    src.parent.mkdir()
    with h5py.File(src, "w") as f:
        f.create_dataset("x", data=np.arange(6000, dtype="u2").reshape(60, 100), chunks=(10, 100))
    served = tmp_path / "there" / "moved.h5"
    served.parent.mkdir()
    shutil.copy(src, served)
    out = tmp_path / "r.json"
    res = run("refs", str(src), "-o", str(out), "--url", served.as_uri(), "--inline-threshold", "0")
    assert res.returncode == 0, res.stderr
    refs = json.loads(out.read_text())["refs"]
    assert {v[0] for v in refs.values() if isinstance(v, list)} == {served.as_uri()}
    src.unlink()  # the references read the moved file only
    fs = fsspec.filesystem("reference", fo=str(out))
    z = zarr.open_array(fs.get_mapper("x"), mode="r", zarr_format=2)
    np.testing.assert_array_equal(z[...], np.arange(6000, dtype="u2").reshape(60, 100))
