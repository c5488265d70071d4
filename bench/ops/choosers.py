"""Key choosers: which record an operation touches (YCSB's request distributions), vectorised with numpy.

Every chooser works on a dense index space [0, item_count); `OpStream` maps indexes to record ids. Each draw
consumes exactly one row of doubles from the chooser's generator, so a stream drawn in batches of any size is the
same stream. The item count can grow (inserts): `grow(new_count)`, or `draw_for(counts)` to draw keys for a run
of operations during which the count grows (operation j may target any key below counts[j]).

- `UniformKeys`: every key equally likely.
- `ZipfianKeys`: YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record synthetic
  databases", SIGMOD 1994): zeta(n, theta) is computed once and extended incrementally when n grows; rank r has
  probability close to (r + 1)^-theta / zeta(n, theta). The closed form is exact for ranks 0 and 1 and
  approximate beyond (for theta = 0.99 it draws rank 2 about 17-20% too often, and its CDF is within ~0.016 of
  the exact Zipf CDF): that is YCSB's behaviour, kept on purpose so results compare with YCSB's.
  `scrambled=True` (YCSB's ScrambledZipfian) maps ranks to keys by a bijection derived from the 64-bit FNV-1a
  hash of the rank (ranks sorted by hash), so the hot keys are spread over the range and the frequency profile
  is unchanged. Only the records present at construction are scrambled; keys added by `grow` take the coldest
  ranks in insertion order, as in YCSB's unscrambled generator, so the hot set stays put while records are added.
- `LatestKeys`: YCSB's SkewedLatestGenerator: key = newest - zipfian rank, so the newest key is the most likely.
- `HotspotKeys`: YCSB's HotspotIntegerGenerator: a share `opn_fraction` of draws go uniformly to the first
  `data_fraction` of the keys (the hot set, recomputed as the count grows), the rest uniformly to the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from bench.ops.mix import YcsbSpec

FNV_OFFSET_BASIS_64 = np.uint64(0xCBF29CE484222325)
FNV_PRIME_64 = np.uint64(0x100000001B3)
_ZETA_CHUNK = 1 << 20


@runtime_checkable
class KeyChooser(Protocol):
    item_count: int

    def draw(self, n: int) -> np.ndarray:
        """n int64 keys in [0, item_count)."""
        ...

    def draw_for(self, counts: np.ndarray) -> np.ndarray:
        """One int64 key per entry, key j in [0, counts[j]); counts non-decreasing and >= item_count.

        Leaves item_count unchanged; call `grow` afterwards.
        """
        ...

    def grow(self, new_count: int) -> None:
        """Make keys up to new_count - 1 eligible (new_count >= item_count)."""
        ...


def fnv1a64(values: np.ndarray) -> np.ndarray:
    """YCSB's Utils.fnvhash64 (FNV-1a over the 8 little-endian bytes), as uint64, without the final abs()."""
    v = np.asarray(values).astype(np.uint64)
    h = np.full(v.shape, FNV_OFFSET_BASIS_64, dtype=np.uint64)
    for _ in range(8):
        h ^= v & np.uint64(0xFF)
        h *= FNV_PRIME_64
        v >>= np.uint64(8)
    return h


def zeta(n: int, theta: float, start: int = 0, initial: float = 0.0) -> float:
    """sum_{i=start+1}^{n} i^-theta + initial (YCSB's incremental zeta), in bounded memory."""
    total = initial
    for lo in range(start + 1, n + 1, _ZETA_CHUNK):
        hi = min(n, lo + _ZETA_CHUNK - 1)
        total += float(np.sum(np.arange(lo, hi + 1, dtype=np.float64) ** -theta))
    return total


def _check_count(item_count: int) -> int:
    if item_count < 1:
        raise ValueError(f"item_count must be at least 1, got {item_count}")
    return int(item_count)


def _check_counts(counts: np.ndarray, item_count: int) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size and (counts[0] < item_count or np.any(np.diff(counts) < 0)):
        raise ValueError("counts must be non-decreasing and not below the current item_count")
    return counts


class _Base(ABC):
    def __init__(self, item_count: int, rng: np.random.Generator):
        self.item_count = _check_count(item_count)
        self.rng = rng

    def draw(self, n: int) -> np.ndarray:
        return self.draw_for(np.full(n, self.item_count, dtype=np.int64))

    @abstractmethod
    def draw_for(self, counts: np.ndarray) -> np.ndarray: ...

    def grow(self, new_count: int) -> None:
        if new_count < self.item_count:
            raise ValueError(f"item_count cannot shrink ({self.item_count} -> {new_count})")
        self.item_count = int(new_count)


class UniformKeys(_Base):
    """Every key in [0, item_count) equally likely."""

    def draw(self, n: int) -> np.ndarray:
        return (self.rng.random(n) * self.item_count).astype(np.int64)

    def draw_for(self, counts: np.ndarray) -> np.ndarray:
        counts = _check_counts(counts, self.item_count)
        keys = (self.rng.random(counts.size) * counts).astype(np.int64)
        return np.minimum(keys, counts - 1)


class ZipfRanks:
    """YCSB ZipfianGenerator over ranks [0, count): rank 0 most likely. zeta kept incrementally."""

    def __init__(self, count: int, theta: float):
        if not 0.0 < theta < 1.0:
            raise ValueError(f"zipfian theta must be in (0, 1), got {theta}")
        self.theta = float(theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.half_pow = 0.5**theta
        self.zeta2 = 1.0 + self.half_pow
        self.count = count
        self.zetan = zeta(count, theta)

    def grow(self, new_count: int) -> None:
        if new_count > self.count:
            self.zetan = zeta(new_count, self.theta, start=self.count, initial=self.zetan)
            self.count = new_count

    def _eta(self, count: np.ndarray | float, zetan: np.ndarray | float) -> np.ndarray:
        count = np.asarray(count, dtype=np.float64)
        zetan = np.asarray(zetan, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = (1.0 - (2.0 / count) ** (1.0 - self.theta)) / (1.0 - self.zeta2 / zetan)
        return np.where(count > 2, eta, 0.0)  # unused for count <= 2: ranks 0 and 1 cover everything

    def ranks(self, u: np.ndarray, count: np.ndarray | int, zetan: np.ndarray | float) -> np.ndarray:
        eta = self._eta(count, zetan)
        uz = u * zetan
        r = (np.asarray(count, dtype=np.float64) * (eta * u - eta + 1.0) ** self.alpha).astype(np.int64)
        r = np.minimum(r, np.asarray(count, dtype=np.int64) - 1)
        r[uz < self.zeta2] = 1
        r[uz < 1.0] = 0
        return r

    def draw(self, u: np.ndarray) -> np.ndarray:
        return self.ranks(u, self.count, self.zetan)

    def draw_for(self, u: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Ranks where the count grows along the run: zeta per position from a cumulative sum of new terms."""
        top = int(counts[-1]) if counts.size else self.count
        if top == self.count:
            return self.draw(u)
        terms = np.arange(self.count + 1, top + 1, dtype=np.float64) ** -self.theta
        cum = np.concatenate(([self.zetan], self.zetan + np.cumsum(terms)))
        zetan = cum[counts - self.count]
        return self.ranks(u, counts, zetan)


class ZipfianKeys(_Base):
    """YCSB's (Scrambled)ZipfianGenerator; see the module docstring for the scrambling and growth rules."""

    def __init__(self, item_count: int, theta: float = 0.99, scrambled: bool = True, *, rng: np.random.Generator):
        super().__init__(item_count, rng)
        self.theta = float(theta)
        self.scrambled = scrambled
        self._zipf = ZipfRanks(self.item_count, self.theta)
        self.key_of_rank: np.ndarray | None = None
        if scrambled:
            order = np.argsort(fnv1a64(np.arange(self.item_count)), kind="stable")
            dtype = np.int32 if self.item_count < 2**31 else np.int64
            key_of_rank = np.empty(self.item_count, dtype=dtype)
            key_of_rank[order] = np.arange(self.item_count, dtype=dtype)  # rank r -> place of fnv(r) in hash order
            self.key_of_rank = key_of_rank

    def zetan(self) -> float:
        return self._zipf.zetan

    def _to_keys(self, ranks: np.ndarray) -> np.ndarray:
        if self.key_of_rank is None:
            return ranks
        scrambled_part = ranks < self.key_of_rank.size
        keys = ranks.copy()
        keys[scrambled_part] = self.key_of_rank[ranks[scrambled_part]]
        return keys

    def draw(self, n: int) -> np.ndarray:
        return self._to_keys(self._zipf.draw(self.rng.random(n)))

    def draw_for(self, counts: np.ndarray) -> np.ndarray:
        counts = _check_counts(counts, self.item_count)
        return self._to_keys(self._zipf.draw_for(self.rng.random(counts.size), counts))

    def grow(self, new_count: int) -> None:
        super().grow(new_count)
        self._zipf.grow(self.item_count)


class LatestKeys(_Base):
    """YCSB's SkewedLatestGenerator: key = (item_count - 1) - zipfian rank; the newest key is the most likely."""

    def __init__(self, item_count: int, theta: float = 0.99, *, rng: np.random.Generator):
        super().__init__(item_count, rng)
        self._zipf = ZipfRanks(self.item_count, theta)

    def draw(self, n: int) -> np.ndarray:
        return (self.item_count - 1) - self._zipf.draw(self.rng.random(n))

    def draw_for(self, counts: np.ndarray) -> np.ndarray:
        counts = _check_counts(counts, self.item_count)
        return (counts - 1) - self._zipf.draw_for(self.rng.random(counts.size), counts)

    def grow(self, new_count: int) -> None:
        super().grow(new_count)
        self._zipf.grow(self.item_count)


class HotspotKeys(_Base):
    """YCSB's HotspotIntegerGenerator: opn_fraction of draws go to the first data_fraction of the keys."""

    def __init__(self, item_count: int, data_fraction: float, opn_fraction: float, rng: np.random.Generator):
        super().__init__(item_count, rng)
        if not (0.0 < data_fraction < 1.0 and 0.0 < opn_fraction < 1.0):
            raise ValueError(f"hotspot fractions must be in (0, 1), got {data_fraction}, {opn_fraction}")
        self.data_fraction = float(data_fraction)
        self.opn_fraction = float(opn_fraction)

    def hot_count(self, count: int | np.ndarray) -> np.ndarray:
        """Size of the hot set for a given item count: at least 1 key, and all keys when count is 1."""
        count = np.asarray(count, dtype=np.int64)
        return np.clip((count * self.data_fraction).astype(np.int64), 1, count)

    def draw_for(self, counts: np.ndarray) -> np.ndarray:
        counts = _check_counts(counts, self.item_count)
        u = self.rng.random((counts.size, 2))
        hot = self.hot_count(counts)
        cold = counts - hot
        in_hot = (u[:, 0] < self.opn_fraction) | (cold == 0)
        keys = np.where(in_hot, u[:, 1] * hot, hot + u[:, 1] * cold).astype(np.int64)
        return np.minimum(keys, counts - 1)


def make_chooser(spec: YcsbSpec, item_count: int, rng: np.random.Generator) -> KeyChooser:
    """The key chooser a workload's `request_distribution` names."""
    dist = spec.request_distribution
    if dist == "uniform":
        return UniformKeys(item_count, rng)
    if dist == "zipfian":
        return ZipfianKeys(item_count, spec.zipfian_constant, spec.scrambled, rng=rng)
    if dist == "latest":
        return LatestKeys(item_count, spec.zipfian_constant, rng=rng)
    if dist == "hotspot":
        return HotspotKeys(item_count, spec.hotspot_data_fraction, spec.hotspot_opn_fraction, rng)
    raise ValueError(f"unknown request_distribution {dist!r}")  # unreachable: the spec validates it
