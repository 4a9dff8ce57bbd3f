"""The ``b2store`` command line (click): ``info``, ``convert``, ``refs``, ``demo``, ``bench``.

Bad arguments give a one-line ``Error: …`` on stderr and a non-zero exit (2 for usage errors, 1 when
the work failed), never a traceback; an interrupted run exits 130 (Ctrl-C) or 143 (SIGTERM).
The click app lives in :mod:`b2store._cli_app` and is imported only here, so ``import b2store``
stays light.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``b2store`` console script."""
    try:
        import click
    except ImportError:
        print(
            "b2store's command line needs click and tqdm: pip install 'b2store[cli]'",
            file=sys.stderr,
        )
        return 2
    from b2store._cli_app import Terminated, app

    try:
        rv = app.main(args=argv, prog_name="b2store", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, Terminated):  # SIGTERM: 128 + 15, as shells report it
            print("Terminated.", file=sys.stderr)
            return 143
        print("Aborted.", file=sys.stderr)  # Ctrl-C (SIGINT): 128 + 2
        return 130
    except click.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `b2store`: the help, not an error
            print(exc.format_message(), file=sys.stderr)
            return exc.exit_code
        print(f"Error: {exc.format_message()}".splitlines()[0], file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return rv if isinstance(rv, int) else 0
