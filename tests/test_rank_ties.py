"""The Hodges-Lehmann p with tied values is the exact permutation p (test errors on a fixed test set are
multiples of 1 / test images, so seeds tie), checked against scipy's exhaustive permutation test."""

import numpy as np
import pytest
from scipy import stats as sps

from ablations.stats.robust import hodges_lehmann


def _permutation_p(a, b):
    def rank_sum(x, y, axis):
        both = np.concatenate([x, y], axis=axis)
        return sps.rankdata(both, axis=axis)[..., : x.shape[axis]].sum(axis=axis)
    return sps.permutation_test((a, b), rank_sum, permutation_type="independent", n_resamples=np.inf,
                                alternative="two-sided", vectorized=True, axis=-1).pvalue


@pytest.mark.parametrize("a, b", [
    ([0.01, 0.02, 0.02, 0.03, 0.05], [0.01, 0.01, 0.02, 0.00, 0.01]),
    ([0.012, 0.014, 0.014, 0.02, 0.02, 0.03, 0.05], [0.01, 0.014, 0.012, 0.012, 0.02, 0.011, 0.01]),
    ([0.3, 0.3, 0.3, 0.3], [0.3, 0.3, 0.1, 0.2]),
])
def test_tied_values_get_the_exact_permutation_p(a, b):
    _, _, _, p = hodges_lehmann(np.array(a), np.array(b))
    assert float(p) == pytest.approx(_permutation_p(np.array(a), np.array(b)), rel=1e-9)


def test_the_untied_p_is_unchanged_and_exact():
    a, b = np.array([0.05, 0.06, 0.07, 0.08]), np.array([0.01, 0.02, 0.03, 0.04])
    _, _, _, p = hodges_lehmann(a, b)
    assert float(p) == pytest.approx(2 / 70) and float(p) == pytest.approx(_permutation_p(a, b))
