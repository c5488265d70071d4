"""Key choosers: empirical distributions against the theoretical ones (numpy only, fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.ops.choosers import HotspotKeys, LatestKeys, UniformKeys, ZipfianKeys, fnv1a64, make_chooser, zeta
from bench.ops.mix import YcsbSpec

THETA = 0.99
DRAWS = 1_000_000
TOP_RANKS = 50


def exact_zipf_pmf(n: int, theta: float = THETA) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -theta
    return w / w.sum()


def gray_pmf(n: int, theta: float = THETA) -> np.ndarray:
    """The exact distribution of Gray et al.'s closed form (YCSB's ZipfianGenerator) over ranks 0..n-1.

    P(rank = 0) = 1/zeta_n, P(rank = 1) = 0.5^theta/zeta_n, and for k >= 2, P(rank >= k) = (1 - (k/n)^(1-theta))/eta.
    """
    zetan = zeta(n, theta)
    eta = (1 - (2 / n) ** (1 - theta)) / (1 - (1 + 0.5**theta) / zetan)
    k = np.arange(n + 1, dtype=np.float64)
    surv = (1 - (k / n) ** (1 - theta)) / eta  # P(rank >= k), valid for k >= 2
    surv[0], surv[1] = 1.0, 1.0 - 1.0 / zetan
    surv[n] = 0.0
    return surv[:-1] - surv[1:]


def chi2_critical(df: int, z: float = 3.719) -> float:
    """Upper quantile of chi-square(df) by Wilson-Hilferty; z = 3.719 is the one-sided 1e-4 normal quantile."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


def chi2_top(counts: np.ndarray, pmf: np.ndarray, top: int = TOP_RANKS) -> tuple[float, int]:
    """Chi-square statistic over the `top` first ranks plus one bucket for the rest; returns (stat, df)."""
    total = counts.sum()
    observed = np.append(counts[:top], counts[top:].sum())
    expected = np.append(pmf[:top], pmf[top:].sum()) * total
    return float(((observed - expected) ** 2 / expected).sum()), top


def passes_chi2(counts: np.ndarray, pmf: np.ndarray) -> bool:
    stat, df = chi2_top(counts, pmf)
    return stat < chi2_critical(df)


def ks_distance(counts: np.ndarray, pmf: np.ndarray) -> float:
    return float(np.abs(np.cumsum(counts) / counts.sum() - np.cumsum(pmf)).max())


KS_BOUND = 0.02  # Gray's closed form is within ~0.016 of the exact Zipf CDF for theta = 0.99 (see bench.ops.choosers)


@pytest.mark.parametrize("n", [1000, 100_000])
def test_zipfian_matches_theory(n: int) -> None:
    z = ZipfianKeys(n, THETA, scrambled=False, rng=np.random.default_rng(7))
    assert z.zetan() == pytest.approx(float(np.sum(np.arange(1, n + 1) ** -THETA)), rel=1e-12)
    keys = z.draw(DRAWS)
    assert keys.dtype == np.int64 and keys.min() >= 0 and keys.max() < n
    counts = np.bincount(keys, minlength=n)

    # The hottest key is key 0 with probability exactly 1/zeta(n, theta): within 5 standard deviations.
    p0 = 1.0 / z.zetan()
    assert counts.argmax() == 0
    assert abs(counts[0] / DRAWS - p0) < 5 * math.sqrt(p0 * (1 - p0) / DRAWS)

    # Goodness of fit against the generator's closed-form distribution, and closeness to the exact Zipf law.
    stat, df = chi2_top(counts, gray_pmf(n))
    assert stat < chi2_critical(df), f"chi-square {stat:.1f} over {df} degrees of freedom"
    assert ks_distance(counts, exact_zipf_pmf(n)) < KS_BOUND


@pytest.mark.parametrize("n", [1000, 100_000])
def test_zipfian_checks_can_fail(n: int) -> None:
    rng = np.random.default_rng(8)
    uniform = np.bincount(UniformKeys(n, rng).draw(DRAWS), minlength=n)
    assert not passes_chi2(uniform, gray_pmf(n))
    assert ks_distance(uniform, exact_zipf_pmf(n)) > 10 * KS_BOUND
    assert abs(uniform[0] / DRAWS - 1.0 / zeta(n, THETA)) > 0.05

    # The chi-square is tight enough to tell Gray's approximation from the exact law it approximates.
    exact = np.bincount(rng.choice(n, size=DRAWS, p=exact_zipf_pmf(n)), minlength=n)
    assert not passes_chi2(exact, gray_pmf(n))

    # A slightly different theta is caught too.
    other = np.bincount(ZipfianKeys(n, 0.9, scrambled=False, rng=rng).draw(DRAWS), minlength=n)
    assert not passes_chi2(other, gray_pmf(n))


def test_scrambled_zipfian_same_profile_spread_keys() -> None:
    n = 100_000
    z = ZipfianKeys(n, THETA, scrambled=True, rng=np.random.default_rng(9))
    assert z.key_of_rank is not None
    assert np.array_equal(np.sort(z.key_of_rank), np.arange(n))  # a bijection: no two ranks share a key
    counts = np.bincount(z.draw(DRAWS), minlength=n)

    # Same frequency profile: the sorted counts follow the unscrambled distribution over the top ranks.
    profile = np.sort(counts)[::-1]
    stat, df = chi2_top(profile, gray_pmf(n), top=10)
    assert stat < chi2_critical(df)
    assert abs(profile[0] / DRAWS - 1.0 / z.zetan()) < 5 * math.sqrt(1 / z.zetan() / DRAWS)

    # The hottest key is not key 0, it is the key rank 0 maps to, and the hot keys are spread over the range.
    hottest = int(counts.argmax())
    assert hottest != 0 and hottest == int(z.key_of_rank[0])
    deciles = np.bincount(np.arange(n) * 10 // n, weights=counts, minlength=10) / DRAWS
    assert deciles.min() > 0.03 and deciles.max() < 0.3, deciles
    top10 = np.argsort(counts)[::-1][:10]
    assert np.ptp(top10) > n // 2

    unscrambled = np.bincount(ZipfianKeys(n, THETA, scrambled=False, rng=np.random.default_rng(9)).draw(DRAWS))
    assert unscrambled[: n // 10].sum() / DRAWS > 0.6  # the same check on unscrambled keys fails


def test_fnv_matches_ycsb_reference() -> None:
    # FNV-1a 64 of the 8 little-endian bytes of 0: offset basis XOR 0, times the prime, eight times.
    h = 0xCBF29CE484222325
    for _ in range(8):
        h = (h * 0x100000001B3) % 2**64
    assert int(fnv1a64(np.array([0]))[0]) == h
    assert len(set(fnv1a64(np.arange(10_000)).tolist())) == 10_000


def test_zipfian_grows_incrementally() -> None:
    z = ZipfianKeys(1000, THETA, scrambled=True, rng=np.random.default_rng(10))
    z.grow(1500)
    assert z.item_count == 1500
    assert z.zetan() == pytest.approx(zeta(1500, THETA), rel=1e-12)
    keys = z.draw(200_000)
    assert keys.max() < 1500 and keys.max() >= 1000  # new keys are drawn, at the cold end
    counts = np.bincount(keys, minlength=1500)
    assert counts[1000:].sum() < counts[:1000].sum() / 10
    assert counts.argmax() == z.key_of_rank[0]  # the hot set stays on the initial records
    with pytest.raises(ValueError):
        z.grow(10)


def test_draw_for_growing_counts_matches_a_grown_chooser() -> None:
    n0, n1 = 1000, 1300
    grown = ZipfianKeys(n1, THETA, scrambled=False, rng=np.random.default_rng(11)).draw(50_000)
    z = ZipfianKeys(n0, THETA, scrambled=False, rng=np.random.default_rng(11))
    stepped = z.draw_for(np.full(50_000, n1))  # zeta extended on the fly equals zeta computed directly
    assert np.mean(grown == stepped) > 0.999
    assert z.item_count == n0

    counts = np.repeat(np.arange(n0, n0 + 100), 50)
    for chooser in (
        UniformKeys(n0, np.random.default_rng(12)),
        ZipfianKeys(n0, THETA, scrambled=True, rng=np.random.default_rng(12)),
        LatestKeys(n0, THETA, rng=np.random.default_rng(12)),
        HotspotKeys(n0, 0.2, 0.8, np.random.default_rng(12)),
    ):
        keys = chooser.draw_for(counts)
        assert keys.dtype == np.int64 and keys.min() >= 0 and np.all(keys < counts), type(chooser).__name__
        with pytest.raises(ValueError):
            chooser.draw_for(np.array([n0 - 1]))


def test_latest_favours_newest() -> None:
    n = 1000
    latest = LatestKeys(n, THETA, rng=np.random.default_rng(13))
    counts = np.bincount(latest.draw(DRAWS), minlength=n)
    assert counts.argmax() == n - 1
    assert counts[n - 1] / DRAWS == pytest.approx(1 / zeta(n, THETA), abs=0.002)
    newest_decile = counts[n - n // 10:].sum() / DRAWS
    expected = gray_pmf(n)[: n // 10].sum()
    assert newest_decile > 0.6 and newest_decile == pytest.approx(expected, abs=0.003)
    assert counts[n - 1] > counts[n - 2] > counts[n - 10] > counts[n // 2]

    latest.grow(1200)
    grown = np.bincount(latest.draw(100_000), minlength=1200)
    assert grown.argmax() == 1199 and grown[1080:].sum() / 100_000 > 0.6


def test_hotspot_share() -> None:
    n, data_fraction, opn_fraction = 10_000, 0.2, 0.8
    hot = HotspotKeys(n, data_fraction, opn_fraction, np.random.default_rng(14))
    keys = hot.draw(200_000)
    in_hot = keys < int(n * data_fraction)
    assert abs(in_hot.mean() - opn_fraction) < 0.01
    assert keys.min() >= 0 and keys.max() < n
    hot_counts = np.bincount(keys[in_hot], minlength=2000)
    assert hot_counts.min() > 0 and keys[~in_hot].min() >= 2000  # the whole hot set used, cold keys above it
    assert abs(keys[in_hot].mean() - 999.5) < 10  # uniform inside the hot set

    hot.grow(20_000)
    keys = hot.draw(200_000)
    assert abs((keys < 4000).mean() - opn_fraction) < 0.01 and keys.max() >= 10_000


def test_uniform_covers_range_evenly() -> None:
    keys = UniformKeys(100, np.random.default_rng(15)).draw(200_000)
    counts = np.bincount(keys, minlength=100)
    assert keys.max() == 99 and keys.min() == 0
    stat = float(((counts - 2000) ** 2 / 2000).sum())
    assert stat < chi2_critical(99)


def test_make_chooser_follows_spec() -> None:
    rng = np.random.default_rng(16)
    base = {"read_proportion": 1.0}
    assert isinstance(make_chooser(YcsbSpec(**base, request_distribution="uniform"), 10, rng), UniformKeys)
    z = make_chooser(YcsbSpec(**base, zipfian_constant=0.8, scrambled=False), 10, rng)
    assert isinstance(z, ZipfianKeys) and z.theta == 0.8 and z.key_of_rank is None
    assert isinstance(make_chooser(YcsbSpec(**base, request_distribution="latest"), 10, rng), LatestKeys)
    h = make_chooser(YcsbSpec(**base, request_distribution="hotspot", hotspot_data_fraction=0.1,
                              hotspot_opn_fraction=0.9), 10, rng)
    assert isinstance(h, HotspotKeys) and (h.data_fraction, h.opn_fraction) == (0.1, 0.9)


def test_tiny_item_counts() -> None:
    for count in (1, 2, 3):
        for chooser in (ZipfianKeys(count, rng=np.random.default_rng(17)),
                        LatestKeys(count, rng=np.random.default_rng(17)),
                        HotspotKeys(count, 0.2, 0.8, np.random.default_rng(17))):
            keys = chooser.draw(1000)
            assert keys.min() >= 0 and keys.max() < count
            assert len(np.unique(keys)) == count  # every key reachable
    with pytest.raises(ValueError):
        UniformKeys(0, np.random.default_rng(17))
