"""`python -m vggbench ...`: the `vggbench` command (vggbench.cli)."""

from .cli import main

raise SystemExit(main())
