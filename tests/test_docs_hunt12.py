"""Session 12: the README, docs and examples as a new user runs them.

Found by running every command of docs/cli.md and every example of examples/ as written, with
bad arguments too: the examples answered a non-HDF5 file, an extra argument or a CAT2_SERVER
that cannot run with a traceback (or ignored the argument); ``b2store info ""`` (and ``convert``,
``refs``) said ": no such file"; ``convert`` named its Python arguments (``nthreads``,
``itrunc_max_error``) instead of the options typed (``--threads``, ``--itrunc-max-error``); an
unknown ``bench --only`` name did not say which names exist. docs/cli.md must name every option
of each command, and no option a command lacks.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import has, requires_h5py, requires_hdf5plugin

click = pytest.importorskip("click")

from b2store._cli_app import app  # noqa: E402
from b2store.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def cli(*args: str) -> tuple[int, str]:
    """Run ``b2store ARGS`` in this process, as the console script does: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(list(args))
    return status, err.getvalue()


def example(
    script: str, *args: str, env: dict[str, str] | None = None, cwd: Path
) -> tuple[int, str]:
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )
    return res.returncode, res.stderr


def one_line_error(status: int, err: str) -> str:
    assert status != 0, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------- examples


@pytest.mark.skipif(
    not (has("xarray") and has("h5py") and has("hdf5plugin")), reason="needs xarray"
)
def test_open_hdf5_example_names_a_file_that_is_not_hdf5(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5\n")
    line = one_line_error(*example("open_hdf5_with_xarray.py", str(text), cwd=tmp_path))
    assert str(text) in line and "not a readable HDF5 file" in line
    assert "name a new file" in line
    assert text.read_text() == "not HDF5\n"  # never overwritten


@pytest.mark.parametrize(
    "script", ["dask_sparse_tomography.py", "lossy_itrunc_j2k.py", "caterva2_with_cache.py"]
)
def test_examples_without_arguments_refuse_one(script: str, tmp_path: Path) -> None:
    needs = {"dask_sparse_tomography.py": "dask", "lossy_itrunc_j2k.py": "xarray"}
    if script in needs and not has(needs[script]):
        pytest.skip(f"needs {needs[script]}")
    line = one_line_error(*example(script, "scan.h5", cwd=tmp_path))
    assert line.startswith("usage: python") and "takes no arguments" in line and "scan.h5" in line
    status, _ = example(script, "--help", cwd=tmp_path)
    assert status == 0


@pytest.mark.parametrize("server", ["missing", "folder"])
def test_caterva2_example_with_a_server_that_cannot_run(server: str, tmp_path: Path) -> None:
    exe = tmp_path / "nope" if server == "missing" else tmp_path
    line = one_line_error(
        *example("caterva2_with_cache.py", env={"CAT2_SERVER": str(exe)}, cwd=tmp_path)
    )
    assert "cannot run cat2-server" in line and str(exe) in line and "CAT2_SERVER" in line


# ------------------------------------------------------------------------------------- commands


@requires_h5py
@requires_hdf5plugin
@pytest.mark.parametrize(
    "args", [("info", ""), ("convert", "", "out.h5"), ("refs", "", "-o", "refs.json")]
)
def test_empty_input_name(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, err = cli(*args)
    line = one_line_error(status, err)
    assert status == 1 and "Got '' instead" in line and "no such file" not in line
    assert not any(tmp_path.iterdir())


@requires_h5py
@requires_hdf5plugin
def test_empty_input_name_in_the_library(tmp_path: Path) -> None:
    from b2store.convert import convert
    from b2store.inspect import inspect_path
    from b2store.refs import write_refs

    with pytest.raises(ValueError, match="Got '' instead"):
        inspect_path("")
    with pytest.raises(ValueError, match="Got '' instead"):
        convert("", tmp_path / "out.h5")
    with pytest.raises(ValueError, match="Got '' instead"):
        write_refs("", str(tmp_path / "refs.json"))


@requires_h5py
@requires_hdf5plugin
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--threads", "0"), "--threads:"),
        (("--clevel", "10"), "--clevel:"),
        (("--itrunc-max-error", "0"), "--itrunc-max-error:"),
        (("--itrunc-max-error", "3", "--j2k-ratio", "10"), "--itrunc-max-error, --j2k-ratio"),
    ],
)
def test_convert_errors_name_the_options(args: tuple[str, ...], named: str, tmp_path: Path) -> None:
    from tests._cli_files import write_sample

    src = write_sample(tmp_path / "in.h5")
    status, err = cli("convert", str(src), str(tmp_path / "out.h5"), *args)
    line = one_line_error(status, err)
    assert status == 2 and named in line, line
    assert "nthreads" not in line and "itrunc_max_error" not in line
    assert not (tmp_path / "out.h5").exists()


def test_bench_only_lists_the_names(tmp_path: Path) -> None:
    (tmp_path / "alpha.py").write_text("")
    (tmp_path / "beta.py").write_text("")
    status, err = cli("bench", "--dir", str(tmp_path), "--only", "gamma")
    line = one_line_error(status, err)
    assert "alpha, beta" in line and "Got gamma instead" in line


# ----------------------------------------------------------------------------------------- docs


def _sections() -> dict[str, str]:
    doc = (ROOT / "docs" / "cli.md").read_text()
    parts = re.split(r"^## `b2store (\w+)", doc, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_cli_doc_names_every_option_and_no_other() -> None:
    sections = _sections()
    assert set(sections) == set(app.commands)
    for name, body in sections.items():
        params = [p for p in app.commands[name].params if p.param_type_name == "option"]
        for p in params:
            if "--help" in p.opts:
                continue
            assert any(o in body for o in p.opts), f"docs/cli.md: b2store {name} lacks {p.opts}"
        known = {o for p in params for o in p.opts + p.secondary_opts}
        used = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)\b", body))
        used -= {"--small"}  # bench: a flag of the benchmark scripts, not of the command
        assert used <= known, f"docs/cli.md: b2store {name} documents {sorted(used - known)}"
