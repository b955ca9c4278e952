"""The seeded simulations behind every default a study decides with, out of a study's own path: `calibrate` (the
tables of docs/statistics.md, `python -m ablations.calibration --help`) and `simulate` (the --until-decided rule
replayed over many simulated studies at once). Imports `ablations.stats`; nothing in a study run imports this."""
