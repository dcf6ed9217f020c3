"""``python -m xpnet``: the ``xpnet`` command (see :mod:`xpnet.app.cli`)."""

import sys

from .app.cli import main

sys.exit(main())
