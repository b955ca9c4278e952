"""Seeds that did not train: the rule, read from a run's record, and the interval on a variant's rate of them.

    flag = did_not_train(first_loss, final_loss, test_error, num_classes)     # arrays of one shape -> bool
    low, high = rate_interval(k, n)                                             # "k of n did not train"
    failure_line(k, n)  -> "1 of 3 seeds did not train (33%, 95% interval 1%-91%)"

The rule (`did_not_train`), stated once, for a run that finished (status "ok"). A run that diverged (a non-finite
training loss: no result) did not train either, and is counted so by the frames (`ablations.stats.frames`) without
this rule; a run that failed (an error: no training outcome) is counted apart. A finished seed did not train when
either
  (a) its training loss did not clearly fall: the last epoch's mean training loss is at least LOSS_RATIO (0.5)
      times the first epoch's, or
  (b) its test error is nearer chance than a perfect score: test error >= CHANCE_SHARE (0.5) x (1 - 1/classes),
      0.45 for 10 classes.
A trained digits net ends its 10 epochs with a training loss of a few percent of its first epoch's and a test error
near 0.03, so neither test fires on it; a seed stuck at its first loss, or one whose test error ends near chance
(0.9 for 10 classes), fires one. A seed that trained but worse (test error 0.20, loss down by 10x) is not flagged:
it is data about the variant, and the decision statistic (`ablations.stats.robust`) must bear it. A criterion whose input
is missing (NaN: no history, or one epoch only, which has no trend; no test error) is not evidence; a seed with
both missing is not flagged.

Why a rule on each seed alone: applied the same way to every seed of every arm, it keeps a test of the trained
seeds exact under "no difference", whatever it flags; a rule that looked at other seeds (an outlier cut against
the arm's median) would not.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .errors import StatsInputError, check_alpha, check_count
from .levels import ALPHA

LOSS_RATIO = 0.5     # final / first epoch's training loss at or above this: the loss did not clearly fall
CHANCE_SHARE = 0.5   # test error at or above this share of chance (1 - 1/classes): nearer chance than a perfect score
RATE_METHODS = ("clopper-pearson", "wilson")


def did_not_train(first_loss, final_loss, test_error, num_classes: int, loss_ratio: float = LOSS_RATIO,
                  chance_share: float = CHANCE_SHARE) -> np.ndarray:
    """Bool array, True where a seed did not train (the module docstring states the rule).

    first_loss, final_loss: mean training loss of the first and last epoch (nats, any shape, NaN if unknown);
    test_error: final test top-1 error as a fraction in [0, 1] (same shape, NaN if unknown); num_classes >= 2."""
    check_count(num_classes, "num_classes", 2)
    if not 0 < loss_ratio <= 1:
        raise StatsInputError(f"loss_ratio must be in (0, 1], got {loss_ratio!r}")
    if not 0 < chance_share <= 1:
        raise StatsInputError(f"chance_share must be in (0, 1], got {chance_share!r}")
    first, final, err = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (first_loss, final_loss,
                                                                                    test_error)))
    with np.errstate(invalid="ignore"):
        stuck = (final >= loss_ratio * first) & (first > 0)      # NaN compares False: no evidence
        near_chance = err >= chance_share * (1 - 1 / num_classes)
    return stuck | near_chance


def record_inputs(history: list[dict] | None, final: dict | None, metric: str = "test_top1_error"
                  ) -> tuple[float, float, float]:
    """(first_loss, final_loss, test_error) of one run: its `history` rows (with `train_loss`) and its `final`
    metrics, as vggcore.train.loop records them; NaN for what the run lacks, and both losses NaN for a history of
    fewer than 2 epochs (no trend to judge). `ablations.runs.rule_inputs` reads them off a record."""
    losses = [h.get("train_loss") for h in history or []]
    # one epoch has no trend: its first loss is its last, which criterion (a) would read as "did not fall"
    usable = len(losses) >= 2 and losses[0] is not None and losses[-1] is not None
    first_loss = float(losses[0]) if usable else float("nan")
    last_loss = float(losses[-1]) if usable else float("nan")
    err = (final or {}).get(metric)
    return first_loss, last_loss, float("nan") if err is None else float(err)


RULE_COLUMNS = ("first_train_loss", "final_train_loss", "rule_error", "num_classes")   # ablations.runs.rule_inputs
RULE = ("a seed did not train when its last epoch's mean training loss is at least {ratio:g} x its first epoch's "
        "(judged from 2 epochs on), or its test top-1 error is at least {share:g} x chance (1 - 1/classes: "
        "0.45 for 10 classes); a criterion whose input the record lacks is no evidence. Such seeds are counted, "
        "left out of the comparison of the trained seeds, and tested apart (one-sided Fisher exact: does the "
        "variant fail more often?), the two p-values combined by Bonferroni into the decision. A run that "
        "diverged (a non-finite training loss, no result) did not train either and is counted with them; failed "
        "runs (an error) are counted apart")


def rule_text(loss_ratio: float = LOSS_RATIO, chance_share: float = CHANCE_SHARE) -> str:
    """The rule of `did_not_train` in words, for the report (stated once per report)."""
    return RULE.format(ratio=loss_ratio, share=chance_share)


def did_not_train_rows(first_loss, final_loss, test_error, num_classes) -> np.ndarray:
    """`did_not_train` for rows that may differ in their number of classes (arrays of one shape; NaN classes:
    criterion (b) gives no evidence for that row)."""
    first, final, err, classes = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                                       (first_loss, final_loss, test_error, num_classes)))
    out = np.zeros(first.shape, dtype=bool)
    known = ~np.isnan(classes)
    for c in np.unique(classes[known]):
        rows = classes == c
        out[rows] = did_not_train(first[rows], final[rows], err[rows], int(c))
    nan = np.full(int((~known).sum()), np.nan)
    out[~known] = did_not_train(first[~known], final[~known], nan, 2)   # the loss criterion alone
    return out


def rate_interval(k, n, alpha: float = ALPHA, method: str = "clopper-pearson"):
    """(low, high) (1 - alpha) interval on the rate behind k of n seeds (arrays of one shape, 0 <= k <= n).

    Clopper-Pearson by default: its coverage is at least 1 - alpha at every rate (tests/test_robust_stats.py
    checks it over rates 0.01-0.5 at 3-10 seeds), which matters at these seed counts, where Wilson's dips below
    for some rates. NaN where n == 0."""
    check_alpha(alpha)
    if method not in RATE_METHODS:
        raise StatsInputError(f"unknown rate interval {method!r}; choose one of {', '.join(RATE_METHODS)}")
    k, n = (np.asarray(x, dtype=float) for x in (k, n))
    if np.any((k < 0) | (k > n)):
        raise StatsInputError(f"need 0 <= k <= n for a rate, got k={k.tolist()!r}, n={n.tolist()!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "clopper-pearson":
            low = np.where(k > 0, sps.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
            high = np.where(k < n, sps.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
        else:
            z = sps.norm.ppf(1 - alpha / 2)
            phat = k / n
            centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
            half = z / (1 + z * z / n) * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
            low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    bad = n <= 0
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def failure_line(k: int, n: int, alpha: float = ALPHA) -> str:
    """The report's words for one variant: "k of n seeds did not train (rate, interval)"."""
    if n == 0:
        return "no finished seeds"
    low, high = rate_interval(k, n, alpha)
    return (f"{k} of {n} seed{'s' if n != 1 else ''} did not train ({k / n:.0%}, {(1 - alpha) * 100:.4g}% "
            f"interval {float(low):.0%}-{float(high):.0%})")


def excess_failures_p(k_variant, n_variant, k_baseline, n_baseline) -> np.ndarray:
    """One-sided p of Fisher's exact test that the variant's seeds fail to train more often than the baseline's
    (arrays of one shape; counts of seeds that did not train, k, out of finished seeds, n). The decision
    statistic compares trained seeds only; this p is the other half of the decision (`sequential.look_step`:
    where a seed of the pair did not train, the variant's p is min(1, 2 min(p of the trained seeds, this p)),
    and a variant this p alone rejects is "worse" by its failure rate), and the report's line "fails to train
    more often than the baseline". At 3 vs 3 seeds the least it can be is 1/20 (3 of 3 against 0 of 3); NaN
    where a side has no seeds."""
    kv, nv, kb, nb = (np.asarray(x, dtype=int) for x in (k_variant, n_variant, k_baseline, n_baseline))
    if np.any((kv < 0) | (kv > nv) | (kb < 0) | (kb > nb)):
        raise StatsInputError("need 0 <= k <= n on both sides for a failure-rate test")
    # given k_v + k_b failures among n_v + n_b seeds, k_v is hypergeometric under "the same rate"
    p = sps.hypergeom.sf(kv - 1, nv + nb, kv + kb, nv)
    return np.where((nv > 0) & (nb > 0), p, np.nan)
