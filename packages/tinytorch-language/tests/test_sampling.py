"""Sampling draws from softmax(logits / temperature), filtered by top-k and top-p: closed forms."""

import numpy as np
import pytest

from tinytorch.language import sample_next


def frequencies(logits, n=40_000, **kwargs):
    rng = np.random.default_rng(0)
    rows = np.repeat(np.asarray([logits], dtype=np.float64), n, axis=0)
    ids = sample_next(rows, rng=rng, **kwargs)
    return np.bincount(ids, minlength=len(logits)) / n


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_divides_the_logits(temperature):
    logits = np.array([0.0, np.log(2.0), np.log(4.0)])
    expected = np.exp(logits / temperature)
    expected /= expected.sum()
    # Multiplying by the temperature instead would give e.g. at T=0.5 [0.39, 0.33, 0.28]
    # instead of [0.05, 0.19, 0.76]; 40,000 draws resolve both to about 0.005.
    np.testing.assert_allclose(frequencies(logits, temperature=temperature), expected, atol=0.01)


def test_top_k_renormalises_over_the_k_most_likely():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    np.testing.assert_allclose(frequencies(logits, top_k=2), [0, 0, 3 / 7, 4 / 7], atol=0.01)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    # 0.4 alone < 0.6; 0.4 + 0.3 >= 0.6: keep {3, 2}
    np.testing.assert_allclose(frequencies(logits, top_p=0.6), [0, 0, 3 / 7, 4 / 7], atol=0.01)


def test_zero_temperature_is_greedy():
    assert sample_next(np.array([[0.1, 3.0, 2.9]]), temperature=0).tolist() == [1]
