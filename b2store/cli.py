"""The ``b2store`` command line (click): ``demo``, and the subcommands added by later modules.

Bad arguments give a one-line message and a non-zero exit (click's behaviour), never a traceback.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``b2store`` console script."""
    try:
        import click  # noqa: F401
    except ImportError:
        msg = "b2store's command line needs click and tqdm: pip install 'b2store[cli]'"
        print(msg, file=sys.stderr)
        return 2
    from b2store._cli_app import app

    return int(app.main(args=argv, prog_name="b2store", standalone_mode=True) or 0)
