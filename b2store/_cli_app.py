"""The click application behind :mod:`b2store.cli` (imported only when click is installed)."""

from __future__ import annotations

import click

from b2store import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="b2store")
def app() -> None:
    """Read Blosc2-compressed HDF5 files and Caterva2 repositories as Zarr."""
