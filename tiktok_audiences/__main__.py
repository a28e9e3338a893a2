"""``python -m tiktok_audiences``: the same as the ``tiktok-audiences`` console script."""

import sys

from tiktok_audiences.cli import main

sys.exit(main())
