"""``python -m b2store`` runs the command line."""

from __future__ import annotations

import sys

from b2store.cli import main

sys.exit(main())
