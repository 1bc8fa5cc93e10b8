"""``python -m skimgclf``: the ``skimgclf`` command."""

import sys

from .cli import main

sys.exit(main())
