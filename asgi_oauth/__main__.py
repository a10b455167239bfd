"""``python -m asgi_oauth``: the ``asgi-oauth`` command."""

import sys

from .cli import main

sys.exit(main())
