"""Change points in a series, found and attributed.

Candidates come from PELT (ruptures, a maintained change point library: numpy and scipy only, so it installs
beside bench's own numpy 2 and scipy; MongoDB's `signal-processing-algorithms` pins numpy < 2 and setuptools < 71,
Apache Otava pins numpy == 2.2.0 and scipy < 1.17), with an absolute-deviation (l1) cost, so one odd night
hardly pays for a segment of its own, on the logarithm of a ratio figure (its noise is a share of its level) with a
penalty from the series' own noise (the MAD of its night-to-night differences, which a step does not inflate). Each candidate is then
kept only when it is significant, as Otava does with E-divisive's candidates: a Student's t-test of the nights
between the previous and the next change point on either side (p < alpha), and when it is large enough to matter
(a relative change of at least `min_change`, or `min_absolute` for recall and error rate, which are near 0 or 1).
A weak candidate is dropped and the rest are tested again, until every one left holds.

Each change is attributed: the night it happened (the first night at the new level), the nights on either side
with their harness commits and engine versions, its size with a 95% interval, its p-value, whether it is for
the worse, and whether the sentinel (the suite's fixed reference measurement) moved the same night: then the
machine moved, not the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.history.rows import FIGURE
from bench.history.series import Series

ABSOLUTE = {"recall": 0.005, "error_rate": 0.001}  # figures judged by an absolute change


@dataclass(frozen=True)
class Detector:
    min_size: int = 2  # nights a level must hold (a single odd night is not a change)
    alpha: float = 0.001
    min_change: float = 0.03  # relative
    penalty: float = 3.0  # PELT penalty: times the noise (l1) or its variance (l2), times log(n)
    model: str = "l1"  # PELT's cost: l1 (the median's absolute deviations: one odd night hardly pays) or l2


@dataclass(frozen=True)
class Step:
    index: int  # first night at the new level
    before: float  # the level before and after (geometric means of ratio figures, else means)
    after: float
    p: float
    lo: float  # 95% interval of the change: relative (after / before - 1) for ratio figures, else after - before
    hi: float
    relative: bool

    @property
    def change(self) -> float:
        return self.after / self.before - 1 if self.relative else self.after - self.before


def _noise(x: np.ndarray) -> float:
    d = np.diff(x)
    mad = float(np.median(np.abs(d - np.median(d)))) * 1.4826 / np.sqrt(2) if len(d) else 0.0
    return mad if mad > 0 else float(np.std(x)) or 1e-9


def _candidates(x: np.ndarray, det: Detector) -> list[int]:
    import ruptures

    n = len(x)
    if n < 2 * det.min_size:
        return []
    sigma = _noise(x)
    algo = ruptures.Pelt(model=det.model, min_size=det.min_size, jump=1).fit(x.reshape(-1, 1))
    scale = sigma if det.model == "l1" else sigma ** 2
    return [b for b in algo.predict(pen=det.penalty * scale * np.log(n)) if b < n]


def _test(y: np.ndarray, start: int, cut: int, end: int, relative: bool) -> Step:
    """Student's t-test of the nights [start, cut) against [cut, end) (y: the log of a ratio figure)."""
    a, b = y[start:cut], y[cut:end]
    dof = len(a) + len(b) - 2
    ss = float(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
    diff = float(b.mean() - a.mean())
    se = np.sqrt(ss / max(dof, 1) * (1 / len(a) + 1 / len(b)))
    if se == 0:
        p = 0.0 if diff else 1.0
    else:
        p = float(2 * stats.t.sf(abs(diff) / se, max(dof, 1)))
    half = float(stats.t.ppf(0.975, max(dof, 1)) * se)
    if relative:
        return Step(cut, float(np.exp(a.mean())), float(np.exp(b.mean())), p, float(np.expm1(diff - half)),
                    float(np.expm1(diff + half)), True)
    return Step(cut, float(a.mean()), float(b.mean()), p, diff - half, diff + half, False)


def _big(step: Step, figure: str, det: Detector) -> bool:
    if figure in ABSOLUTE:
        return abs(step.change) >= ABSOLUTE[figure]
    if not step.relative:  # a ratio figure with a zero in it: judged on the means
        return step.before != 0 and abs(step.change / step.before) >= det.min_change
    return abs(step.change) >= det.min_change


def steps(values: np.ndarray, figure: str = "qps", det: Detector = Detector()) -> list[Step]:
    """The significant steps of a series of values (NaN-free), oldest first. Ratio figures (all but recall and
    error rate) are judged on their logarithm: their noise is a share of the level."""
    x = np.asarray(values, dtype=float)
    relative = figure not in ABSOLUTE and bool((x > 0).all())
    y = np.log(x) if relative else x
    cuts = _candidates(y, det)
    while cuts:
        bounds = [0, *cuts, len(y)]
        tested = [_test(y, bounds[i], bounds[i + 1], bounds[i + 2], relative) for i in range(len(cuts))]
        weak = [i for i, s in enumerate(tested) if s.p >= det.alpha or not _big(s, figure, det)]
        if not weak:
            return tested
        worst = max(weak, key=lambda i: tested[i].p)
        cuts = cuts[:worst] + cuts[worst + 1:]
    return []


@dataclass
class Change:
    series: Series
    step: Step
    worse: bool
    sentinel_moved: bool | None = None  # None: no sentinel series in the history

    def _night(self, i: int) -> dict:
        return self.series.nights.iloc[i].to_dict()

    @property
    def night(self) -> dict:
        return self._night(self.step.index)

    @property
    def previous(self) -> dict:
        return self._night(self.step.index - 1)

    def size_text(self) -> str:
        s = self.step
        if s.relative:
            return f"{s.change:+.1%} [{s.lo:+.1%}, {s.hi:+.1%}]"
        return f"{s.change:+.4f} [{s.lo:+.4f}, {s.hi:+.4f}]"

    def commits(self) -> str:
        a, b = (str(n.get("git_commit") or "?")[:12] for n in (self.previous, self.night))
        return f"{a}..{b}" if a != b else f"{b} (same commit)"

    def versions(self) -> str:
        parts = []
        for col, name in (("backend_server_version", "server"), ("backend_client_version", "client")):
            a, b = self.previous.get(col), self.night.get(col)
            if a != b:
                parts.append(f"{name} {a or '?'} -> {b or '?'}")
            elif b:
                parts.append(f"{name} {b}")
        return ", ".join(parts) or "versions unknown"

    def line(self) -> str:
        fig = FIGURE[self.series.figure]
        verdict = "WORSE" if self.worse else "better"
        machine = ("; a sentinel series: the machine's" if self.series.sentinel else
                   {True: "; sentinel moved too: the machine's", False: "", None: "; no sentinel"}[self.sentinel_moved])
        busy = "; busy night" if bool(self.night.get("busy")) else ""
        return (f"{self.night['night']} {verdict:<6} {fig.label} {self.size_text()} p={self.step.p:.1g} "
                f"{self.series.label()}: nights {self.previous['run_id']} -> {self.night['run_id']}, "
                f"commits {self.commits()}, {self.versions()}{machine}{busy}")


def _worse(series: Series, step: Step) -> bool:
    up = step.after > step.before
    return up != (FIGURE[series.figure].better == "higher")


def find(all_series: list[Series], det: Detector = Detector()) -> list[Change]:
    """Every change of every series, newest first; each engine change says whether the sentinel moved that night."""
    found = [Change(s, st, _worse(s, st)) for s in all_series for st in steps(s.values, s.figure, det)]
    sentinel_series = [s for s in all_series if s.sentinel]
    moved: dict[str, set[str]] = {}
    for c in found:
        if c.series.sentinel:
            moved.setdefault(c.series.figure, set()).update(
                c.series.nights["run_id"].iloc[max(0, c.step.index - 1):c.step.index + 2])
    for c in found:
        if not c.series.sentinel and any(s.figure == c.series.figure for s in sentinel_series):
            c.sentinel_moved = c.night["run_id"] in moved.get(c.series.figure, set())
    return sorted(found, key=lambda c: (str(c.night.get("started_utc")), c.series.label()), reverse=True)


def alarming(c: Change) -> bool:
    """A change that fails the night: for the worse, in an engine's series, and not shared by the sentinel."""
    return c.worse and not c.series.sentinel and c.sentinel_moved is not True


def recent(changes: list[Change], last: int) -> list[Change]:
    """The changes whose night is among the last `last` nights of their series."""
    return [c for c in changes if c.step.index >= len(c.series.nights) - last]
