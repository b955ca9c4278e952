"""The --until-decided procedure as the code before issue 16 ran it (ablations/adaptive.py at commit bb88bf6,
`simulate`, copied verbatim but for its imports): the reference a folder started under the even split must still
be analysed by. `ablations.calibration.simulate.simulate` with rule "even", statistic "welch", freeze=False and no
bounds must reproduce it exactly (tests/test_robust_stats.py)."""

import numpy as np

from ablations.stats import adjust, decide, welch


def simulate(values: np.ndarray, n0: int, max_seeds: int, min_effect: float | None = None,
             maximize: bool = False, alpha: float = 0.05, correction: str = "holm") -> dict:
    studies, arms, _ = values.shape
    looks = max_seeds - n0 + 1
    per = alpha / looks
    n = np.full((studies, arms), n0)
    ever = np.zeros((studies, arms - 1), dtype=bool)
    k = np.arange(max_seeds)
    for look in range(looks):
        mask = k[None, None, :] < n[:, :, None]
        mean = np.where(mask, values, 0).sum(-1) / n
        var = np.where(mask, (values - mean[..., None]) ** 2, 0).sum(-1) / (n - 1)
        _, low, high, p = welch(mean[:, 1:], var[:, 1:], n[:, 1:], mean[:, :1], var[:, :1], n[:, :1], per)
        codes = decide(low, high, adjust(p, correction), maximize, min_effect, per)
        ever |= (codes == 1) | (codes == 2)
        open_ = (codes == 0) & (n[:, 1:] < max_seeds)
        go = open_.any(axis=1) & (n[:, 0] < max_seeds)
        if look == looks - 1 or not go.any():
            break
        n[:, 1:] += open_ & go[:, None]
        n[:, 0] += go
    return {"codes": codes, "ever_rejected": ever, "n": n, "low": low, "high": high}
