"""The click application behind :mod:`b2store.cli` (imported only when click is installed).

Contract: every subcommand turns bad input (a missing or non-HDF5 file, an invalid option, an
unsupported dataset) into one line on stderr, ``Error: …``, and exit status 2 (usage) or 1 (the work
failed); never a traceback. Heavy imports (h5py, xarray, dask) happen inside the commands.
"""

from __future__ import annotations

import _thread
import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from b2store import __version__
from b2store._cores import usable_cores
from b2store._demo_sizes import SIZES as DEMO_SIZES
from b2store.codecs._names import CNAMES

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(func: F) -> F:
    """Turn library exceptions into a one-line ``click.ClickException`` (exit 1)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.Abort, click.exceptions.Exit):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            if os.environ.get("B2STORE_DEBUG"):
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            source = kwargs.get("src") or kwargs.get("path_or_url")
            if type(exc) is RuntimeError and _raised_by_h5py(exc) and source:
                # h5py's error for what HDF5 cannot read ("bad symbol table node signature")
                raise click.ClickException(
                    f"{source}: HDF5 cannot read part of the file, it looks damaged ({msg}). "
                    "Check it with h5dump or h5py, or restore it from a copy."
                ) from None
            if not isinstance(exc, OSError | ValueError | NotImplementedError | KeyError):
                msg = f"{type(exc).__name__}: {msg} (set B2STORE_DEBUG=1 for a traceback)"
            raise click.ClickException(msg or type(exc).__name__) from None

    return wrapper  # type: ignore[return-value]


def _raised_by_h5py(exc: BaseException) -> bool:
    """Whether ``exc`` came out of h5py (its innermost frame is in an h5py module)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and "h5py" in last.tb_frame.f_code.co_filename


def _echo_warnings(caught: list[warnings.WarningMessage], most: int | None = None) -> None:
    """The warnings of a run, one ``Warning:`` line each, without Python's source line and
    worded for the command line (its options, not the API's arguments); with ``most``, only
    the first ``most`` of each kind, then how many more (a codec warns once per chunk:
    ``--j2k-psnr 200`` printed two lines per chunk)."""
    from b2store.errors import without_api_hint

    kinds: dict[str, int] = {}
    for w in caught:
        text = without_api_hint(str(w.message)).strip().splitlines()
        line = text[0] if text else w.category.__name__
        line = line.replace("follow_external_links=True", "--follow-external-links")
        kind = line[:48]  # per-chunk messages differ in their numbers at the end
        kinds[kind] = kinds.get(kind, 0) + 1
        if most is None or kinds[kind] <= most:
            click.echo(f"Warning: {line}", err=True)
    for kind, n in kinds.items():
        if most is not None and n > most:
            click.echo(f"Warning: ... {n - most} more like {kind!r}...", err=True)


def _resend_sigterm() -> None:
    time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The KeyboardInterrupt that :func:`_sigterm_as_interrupt` raises for SIGTERM."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the block runs (main thread only).

    Python runs the handler wherever the main thread is, also inside a weakref callback or a
    ``__del__`` (h5py frees objects all the time), where it ignores exceptions: the interrupt
    was printed as "Exception ignored in ..." and the run went on to the end (exit 0). Such a
    swallowed interrupt reaches ``sys.unraisablehook``, which has SIGTERM sent again.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, Terminated):
            # signal again a moment later from another thread, once this hook and the callback
            # have returned (raise_signal, or waiting for a thread to start, would run the
            # handler inside this hook, ignored once more)
            _thread.start_new_thread(_resend_sigterm, ())
            return
        previous_hook(info)

    previous_hook = sys.unraisablehook
    previous = signal.signal(signal.SIGTERM, handler)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


def _stderr_is_tty() -> bool:
    """Whether progress bars may be drawn: a bar redrawn with carriage returns is noise in a log
    file or a pipe (the per-dataset lines still go there)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


#: ``convert``'s Python argument names, as the messages of CodecChoice/ConvertOptions name them,
#: and the options a user of the command typed instead (``nthreads`` meant nothing there)
_CONVERT_OPTIONS = {
    "cname": "--cname",
    "clevel": "--clevel",
    "nthreads": "--threads",
    "itrunc_max_error": "--itrunc-max-error",
    "j2k_ratio": "--j2k-ratio",
    "j2k_psnr": "--j2k-psnr",
}


def _option_names(message: str) -> str:
    """``message`` with each Python argument name of ``convert`` replaced by its option."""
    import re

    pattern = r"(?<![\w-])(" + "|".join(_CONVERT_OPTIONS) + r")(?![\w-])"
    return re.sub(pattern, lambda m: _CONVERT_OPTIONS[m.group(1)], message)


def _given_options(ctx: click.Context) -> set[str]:
    """The names of the options given on the command line (not left at their defaults)."""
    return {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    }


def _int_tuple(ctx: Any, param: Any, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:  # every field counts: "4,,64" or "1,x" is a typo, never a shorter shape
        out = tuple(int(x) for x in value.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(
            f"Expected comma-separated integers like 1,256,256. Got {value!r} instead."
        ) from None
    if not out or any(v < 1 for v in out):
        raise click.BadParameter(
            f"Expected comma-separated positive integers like 1,256,256. Got {value!r} instead."
        )
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="b2store")
def app() -> None:
    """Read Blosc2-compressed HDF5 files and Caterva2 repositories as Zarr."""


# ------------------------------------------------------------------------------------------ info


@app.command()
@click.argument("path_or_url")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_one_line_errors
def info(path_or_url: str, as_json: bool) -> None:
    """Show the groups and datasets of an HDF5 file (or a Zarr/Caterva2 URL).

    For each dataset: shape, dtype, chunks, Blosc2 blocks, filters, stored size and ratio, and
    whether b2store reads it directly (or why not).
    """
    from b2store.inspect import inspect_path, render_text, to_json

    nodes = inspect_path(path_or_url)
    click.echo(to_json(nodes) if as_json else render_text(nodes))


# --------------------------------------------------------------------------------------- convert


@app.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option(
    "--cname",
    type=click.Choice(list(CNAMES), case_sensitive=False),
    default="zstd",
    show_default=True,
    help="Blosc2 codec.",
)
@click.option("--clevel", default=5, show_default=True, type=int, help="0-9")
@click.option(
    "--filters",
    default="shuffle",
    show_default=True,
    help="Comma-separated Blosc2 filters: none, shuffle, bitshuffle, delta, bytedelta.",
)
@click.option("--blocks", callback=_int_tuple, help="Block shape, e.g. 1,256,256.")
@click.option("--chunks", callback=_int_tuple, help="Rechunk datasets of this rank.")
@click.option("--contiguous", is_flag=True, help="Also convert contiguous datasets.")
@click.option("--itrunc-max-error", type=int, help="Lossy (integers): max absolute error.")
@click.option("--j2k-ratio", type=float, help="Lossy JPEG 2000: target compression ratio.")
@click.option("--j2k-psnr", type=float, help="Lossy JPEG 2000: target PSNR in dB.")
@click.option("--auto", is_flag=True, help="Tune codec, level and filters per dataset.")
@click.option(
    "--tradeoff",
    default=0.5,
    show_default=True,
    type=float,
    help="For --auto: 1 = best ratio, 0 = fastest.",
)
@click.option(
    "--threads",
    default=usable_cores(),
    show_default=True,
    type=int,
    help="Blosc2 compression threads, and the size of the read/decode pool.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-dataset lines.")
@_one_line_errors
def convert(
    src: str,
    dst: str,
    cname: str,
    clevel: int,
    filters: str,
    blocks: tuple[int, ...] | None,
    chunks: tuple[int, ...] | None,
    contiguous: bool,
    itrunc_max_error: int | None,
    j2k_ratio: float | None,
    j2k_psnr: float | None,
    auto: bool,
    tradeoff: float,
    threads: int,
    quiet: bool,
) -> None:
    """Rewrite SRC as DST with Blosc2 b2nd chunks (HDF5 direct chunk writes).

    DST reads with plain h5py + hdf5plugin. Groups, attributes, dimension scales and datasets
    that are not converted are kept. DST appears only when the conversion succeeded.
    """
    from b2store.convert import CodecChoice, ConvertOptions
    from b2store.convert import convert as run

    given = _given_options(click.get_current_context())
    if auto and given & {"cname", "clevel", "filters"}:
        # the tuner picks these per dataset: taking them silently would drop what was asked
        named = ", ".join(f"--{n}" for n in sorted(given & {"cname", "clevel", "filters"}))
        raise click.UsageError(
            f"--auto picks the codec, level and filters per dataset: drop {named}, or drop --auto"
        )
    if not auto and "tradeoff" in given:
        raise click.UsageError("--tradeoff tunes --auto: give --auto too, or drop --tradeoff")
    try:  # option values are checked here: a bad one is a usage error (exit status 2)
        choice = CodecChoice(
            cname=cname,
            clevel=clevel,
            filters=tuple(f.strip() for f in filters.split(",") if f.strip()),
            blocks=blocks,
            itrunc_max_error=itrunc_max_error,
            j2k_ratio=j2k_ratio,
            j2k_psnr=j2k_psnr,
        )
        options = ConvertOptions(
            codec=choice,
            auto=auto,
            tradeoff=tradeoff,
            chunks=chunks,
            contiguous=contiguous,
            nthreads=threads,
        )
    except ValueError as exc:
        raise click.UsageError(_option_names(str(exc))) from None
    log = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    with _sigterm_as_interrupt(), warnings.catch_warnings(record=True) as caught:
        # (SIGTERM as an interrupt: a killed run still removes its temporary file)
        warnings.simplefilter("always")
        report = run(src, dst, options=options, progress=not quiet and _stderr_is_tty(), log=log)
    _echo_warnings(caught, most=3)
    nb = sum(d.nbytes for d in report.datasets if d.action == "converted")
    st = sum(d.stored for d in report.datasets if d.action == "converted")
    ratio = f"{nb / st:.2f}" if st else "-"
    click.echo(
        f"wrote {dst}: {sum(d.action == 'converted' for d in report.datasets)} datasets converted, "
        f"{sum(d.action == 'copied' for d in report.datasets)} copied, ratio {ratio}, "
        f"{report.seconds:.2f} s"
    )
    if auto:
        for d in report.datasets:
            if d.action == "converted":
                click.echo(f"  {d.path}: {d.codec}")


# ------------------------------------------------------------------------------------------ refs


@app.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=True),
    help="refs.json, or a .parq folder for the parquet reference format.",
)
@click.option(
    "--inline-threshold",
    default=500,
    show_default=True,
    type=click.IntRange(min=0),
    help="Chunks smaller than this many bytes are stored in the references themselves.",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="The location of SRC written into the references (default: its absolute path), e.g. "
    "https://server/data/scan.h5 when the references are read where the file is served.",
)
@click.option(
    "--unsupported",
    type=click.Choice(["raise", "warn", "skip"]),
    default="raise",
    show_default=True,
    help="What to do with datasets b2store cannot present.",
)
@click.option(
    "--follow-external-links",
    is_flag=True,
    help="Also export the datasets external links reach (chunks point into the linked files).",
)
@_one_line_errors
def refs(
    src: str,
    output: str,
    inline_threshold: int,
    url: str | None,
    unsupported: str,
    follow_external_links: bool,
) -> None:
    """Export SRC's chunk references (kerchunk/fsspec reference format version 1).

    Open the result with fsspec.filesystem("reference", fo=OUTPUT) plus zarr (Zarr v2 metadata;
    codecs named b2store_*).
    """
    from b2store.errors import (
        DamagedHDF5FileError,
        UnsupportedHDF5FeatureError,
        without_api_hint,
    )
    from b2store.refs import write_refs

    try:
        with _sigterm_as_interrupt(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            n = write_refs(
                src,
                output,
                inline_threshold=inline_threshold,
                url=url,
                unsupported=unsupported,
                follow_external_links=follow_external_links,
            )
    except (UnsupportedHDF5FeatureError, DamagedHDF5FileError) as exc:  # the option, not the API
        if os.environ.get("B2STORE_DEBUG"):
            raise
        raise click.ClickException(
            f"{without_api_hint(str(exc))} Pass --unsupported skip (or warn) to export the rest "
            "of the file."
        ) from None
    _echo_warnings(caught)
    click.echo(f"wrote {output}: {n} references")


# ------------------------------------------------------------------------------------------ demo


@app.command()
@click.option(
    "--size",
    type=click.Choice(list(DEMO_SIZES)),
    default="full",
    show_default=True,
    help="Uncompressed uint16 data: "
    + ", ".join(f"{name} {size.nbytes / 1e6:.0f} MB" for name, size in DEMO_SIZES.items())
    + ".",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Default: $B2STORE_CACHE, else $XDG_CACHE_HOME/b2store (~/.cache/b2store).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="dask threads (default: dask's, one per core).",
)
@_one_line_errors
def demo(size: str, cache_dir: str | None, workers: int | None) -> None:
    """Write a synthetic tomography file, read it through b2store and h5py, compare."""
    from b2store.demo import run_demo

    with _sigterm_as_interrupt():  # so a killed run still removes its temporary file
        result = run_demo(
            size=size,
            cache_dir=cache_dir,
            workers=workers,
            echo=click.echo,
            progress=_stderr_is_tty(),
        )
    if not result.matches:
        raise click.ClickException("b2store and h5py disagree: this is a bug, please report it")


# ----------------------------------------------------------------------------------------- bench


def _declared_options(script: Path) -> set[str]:
    """The long options a script's command line declares: the string arguments starting with
    ``--`` of its ``add_argument(...)`` (argparse) and ``option(...)`` (click) calls, read from
    its syntax tree, so comments, docstrings and help texts do not count. Empty for a script
    Python cannot parse (running it then reports the error)."""
    try:
        tree = ast.parse(script.read_bytes(), filename=str(script))
    except (SyntaxError, ValueError, OSError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("add_argument", "option"):
            found.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.startswith("--")
            )
    return found


def _size_args(script: Path, size: str) -> list[str]:
    """How a benchmark script takes its size: ``--size SIZE`` if it declares ``--size``, else
    ``--small`` (for size small) if it declares that flag, else nothing: every script also
    gets ``B2STORE_BENCH_SIZE``."""
    options = _declared_options(script)
    if "--size" in options:
        return ["--size", size]
    if "--small" in options and size == "small":
        return ["--small"]
    return []


@app.command()
@click.option("--size", type=click.Choice(["small", "full"]), default="small", show_default=True)
@click.option("--only", multiple=True, help="Run only these benchmark scripts (by stem).")
@click.option(
    "--dir",
    "bench_dir",
    type=click.Path(file_okay=False),
    help="Folder of benchmark scripts (default: benchmarks/ beside the package).",
)
@_one_line_errors
def bench(size: str, only: tuple[str, ...], bench_dir: str | None) -> None:
    """Run the benchmarks in benchmarks/ (each as a subprocess) at a chosen size."""
    folder = Path(bench_dir) if bench_dir else Path(__file__).resolve().parents[1] / "benchmarks"
    if not folder.is_dir():
        raise click.ClickException(
            f"{folder}: no benchmarks folder (run from a source checkout or pass --dir)"
        )
    scripts = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    if only:
        names = sorted(p.stem for p in scripts)
        scripts = [p for p in scripts if p.stem in only]
        missing = set(only) - {p.stem for p in scripts}
        if missing:
            raise click.ClickException(
                f"Expected --only names from {', '.join(names) or 'none'} (in {folder}). "
                f"Got {', '.join(sorted(missing))} instead."
            )
    if not scripts:
        raise click.ClickException(f"{folder}: no benchmark scripts")
    failed = []
    env = {**os.environ, "B2STORE_BENCH_SIZE": size}
    root = folder.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if folder.name == "benchmarks" and (folder / "__init__.py").is_file():
            cmd = [sys.executable, "-m", f"benchmarks.{script.stem}"]  # they import benchmarks.*
        cmd += _size_args(script, size)
        click.echo(f"== {script.name} (size {size}): {' '.join(cmd[1:])}")
        res = subprocess.run(cmd, env=env, cwd=root, check=False)
        if res.returncode:
            failed.append(script.name)
    if failed:
        raise click.ClickException(f"benchmarks failed: {', '.join(failed)}")
    click.echo(json.dumps({"ran": [p.name for p in scripts], "size": size}))
