"""The regression gate's noise model default, importable without pandas (`reports compare --help` shows it)."""

# Relative SD of one run's median around the truth, between pytest runs on this VM: two back-to-back runs of one
# commit (4 cases) moved medians by up to 6.8%, about two SDs of the log-ratio, so ~2.4% per run; rounded up.
# A machine whose load changes between runs is far noisier: such cases come out unstable.
BETWEEN_RUN = 0.03
