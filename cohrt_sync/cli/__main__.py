"""``python -m cohrt_sync.cli``: the same as the ``cohrt-sync`` command."""

import sys

from . import main

sys.exit(main())
