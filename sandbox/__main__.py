"""``python -m sandbox [--host H] [--port P] [--token T ...] [--seed N]``: run the TikTok sandbox."""

from __future__ import annotations

from sandbox.server import main

raise SystemExit(main())
