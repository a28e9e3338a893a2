import sys

from tiktok_audiences.cli import main

sys.exit(main())
