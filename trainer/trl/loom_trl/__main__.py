"""`python -m loom_trl ...`: see cli.py."""

from .cli import main

raise SystemExit(main())
