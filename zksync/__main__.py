"""``python3 -m zksync`` is the ``zksync`` command."""

import sys

from .cli import main

sys.exit(main())
