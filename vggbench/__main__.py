"""`python -m vggbench demo|gpu-check`. Every part of the project imports torch (vggcore's package does), so a
Python without it is refused here, in one line, before any import could fail with a traceback."""

import sys

try:
    import torch  # noqa: F401
except ImportError as err:
    print(f"error: torch is not importable by PYTHON={sys.executable} ({err}); point PYTHON at a Python with torch, "
          "torchvision and the project's dependencies, e.g. PYTHON=.venv/bin/python ./dev gpu-check (./dev setup "
          "makes .venv)", file=sys.stderr)
    raise SystemExit(2) from None

from .cli import main  # noqa: E402

raise SystemExit(main())
