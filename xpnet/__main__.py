"""``python -m xpnet``: the ``xpnet`` command (see :mod:`xpnet.cli`)."""

import sys

from .cli import main

sys.exit(main())
