"""What `bench regress` found: one FigureCheck per configuration and figure, and the RegressResult holding them.

A check carries two pairs of numbers. `headline_baseline` / `headline_candidate` are the configuration's
headline figures, the summary's (bench.results.aggregate.headline): every output shows them under the plain
names (QPS, P50, P99, P99.9, recall). `baseline` / `candidate` are what the test compared (for latency the median
of the trials' own percentiles, for several baseline runs the mean of their medians, see `statistic`), and
`change` is the change of those."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bench.results import keys
from bench.results.aggregate import MERGED_FIGURES

Verdict = Literal["regression", "improvement", "within tolerance", "unclear", "too few trials"]

LABELS = {"qps": "QPS", "mean_us": "mean us", "p50_us": "P50 us", "p90_us": "P90 us", "p99_us": "P99 us",
          "p999_us": "P99.9 us", "max_us": "max us", "recall": "recall"}


def figure_label(figure: str) -> str:
    """The plain name a figure is shown under (the compare table's): QPS, P50 us, P99 us, P99.9 us, recall."""
    return LABELS.get(figure, figure)


@dataclass
class FigureCheck:
    key: dict
    figure: str
    baseline: float  # the tested statistic of the baseline (see statistic()), not always the headline
    candidate: float  # the same of the candidate
    change: float  # candidate - baseline, relative (fraction) or absolute as the rule says
    tolerance: float
    relative: bool
    p: float
    n_baseline: int
    n_candidate: int
    verdict: Verdict
    worse: bool  # moved the wrong way beyond the tolerance (whatever the test says)
    baseline_runs: int = 1
    baseline_range: tuple[float, float] | None = None  # lowest and highest median of the baseline runs
    # "mann-whitney" (trials), "run-noise" (one run a side, the machine's run_sd), "prediction" (several baseline
    # runs), "wilcoxon" (recall: queries paired across runs), "paired" (an A/B run's trials, pair by pair)
    test: str = "mann-whitney"
    p_adjusted: float = 1.0  # Holm-Bonferroni over every check of the comparison; the verdict rests on it
    better: bool = False  # moved the right way beyond the tolerance
    floor: float = 0.0  # the smallest p the test could give (Mann-Whitney on few trials)
    figure_better: str = "lower"  # the rule's direction: "higher" or "lower"
    reason: str | None = None  # why a move beyond tolerance is "unclear" (the machine: sentinel, host load)
    note: str | None = None  # what the reader should know beside the verdict
    headline_baseline: float | None = None  # the summary's figure (aggregate.headline) of the baseline's trials
    headline_candidate: float | None = None
    in_summary: bool = True  # the summary has this figure; else the headline columns show what was tested

    def describe_change(self) -> str:
        return f"{self.change:+.1%}" if self.relative else f"{self.change:+.4g}"

    def statistic(self) -> str:
        """The name of what the test compared: 'headline' when it is the headline figure itself."""
        label = figure_label(self.figure).removesuffix(" us")
        if not self.in_summary:
            return "median of trials (no summary figure)"
        if self.test == "paired":
            return f"trimmed mean of {self.n_baseline} paired {'ratios' if self.relative else 'differences'}"
        per_trial = self.figure in MERGED_FIGURES
        if self.baseline_runs > 1:
            return f"median of trial {label}{'s' if per_trial else ''}, baseline the mean of {self.baseline_runs} runs'"
        return f"median of trial {label}s" if per_trial else "headline"


@dataclass
class Configuration:
    """One configuration compared: its key and the headline figures of each side (aggregate.headline)."""
    key: dict
    baseline: dict
    candidate: dict


@dataclass
class RegressResult:
    baseline: str
    candidate: str
    alpha: float
    checks: list[FigureCheck] = field(default_factory=list)
    only_baseline: list[dict] = field(default_factory=list)
    only_candidate: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sentinel: list[FigureCheck] = field(default_factory=list)  # the sentinel's own checks (never verdicts)
    paired: bool = False  # an interleaved A/B run: arm A against arm B, trial by trial
    configurations: list[Configuration] = field(default_factory=list)

    @property
    def regressions(self) -> list[FigureCheck]:
        return [c for c in self.checks if c.verdict == "regression"]


def decide(worse: bool, better: bool, p: float, alpha: float, floor: float) -> Verdict:
    if not (worse or better):
        return "within tolerance"
    if p < alpha:
        return "regression" if worse else "improvement"
    return "too few trials" if floor >= alpha else "unclear"


def key_text(k: dict) -> str:
    """A configuration in full: backend, workload, op and its label (never cut)."""
    return f"{k['backend']} {k['workload']} {k['op']} " + keys.label(k)
