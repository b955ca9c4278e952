"""`python -m ablations.calibration`: the simulations behind the defaults (ablations.calibration.calibrate)."""

from .calibrate import main

raise SystemExit(main())
