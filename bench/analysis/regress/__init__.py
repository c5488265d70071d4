"""`bench regress`: is the candidate worse than the baseline?

For every configuration present in both (the key columns of the results schema: backend, workload, op,
ef_search, k, concurrency, target rate, filter, ...) and every figure named in the config, a figure regressed when
it moved the wrong way by more than its tolerance (the practical threshold, from the config) AND a test on the
right statistical unit finds the move clear (p < alpha):

- Latency and throughput against a baseline of one run: one run cannot show how runs differ, so the config
  gives each figure the machine's run-to-run standard deviation (`run_sd`, measured by
  benchmarks/regress_false_alarms.py) and the change is tested against it, z = change / sqrt(2 run_sd^2 + the
  two runs' standard errors^2) (a random-effects model with a measured between-run variance). Without
  `run_sd`, a two-sided Mann-Whitney U test on the trials (exact, by enumerating every split, when that is
  small), which sees only how one run's trials spread, and the summary says so. With 5 against 5 trials its
  smallest possible p is 2/252 = 0.0079; with 3 against 3 it is 0.1, so fewer than 4 trials a side can never
  show a regression.
- Latency and throughput against a baseline of several runs (`bench baseline save --append`): the trials of one
  run share its process, its built index and its neighbours on the machine, so they show less spread than runs
  do and a test on them is falsely certain. The unit is then the run: the candidate's trimmed median is tested
  against a prediction interval for one more run drawn like the baseline runs (Student's t with n-1 degrees
  of freedom on the runs' medians), and the change counts from the mean of their medians.
- Recall: a property of the built index, identical in every trial of a run, so trials are no replicates of it
  at all. Each trial records recall per query (`recall_per_query`); the runs' per-query recall is paired query
  by query and a Wilcoxon signed-rank test (Pratt's treatment of zero differences) asks whether the candidate is
  systematically worse. Two builds of the same index differ per query with no direction, so only a shift
  common to the queries counts.

What each side shows: its headline figures, the summary's (bench.results.aggregate.headline), under the plain
names; where a test compares something else (the median of the trials' own P99s, the mean of several baseline
runs' medians), that is named beside it and the change is of what was tested.

The package, by job: config (the rules), stats (the tests and Holm), comparison (grouping, checks, the reason
nothing pairs), paired (bench ab's arms), result (what was found), render (terminal, markdown, HTML, JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.analysis.failed_trials import failed_trial_notes
from bench.analysis.load import require_complete, trials_frame
from bench.analysis.regress.comparison import (
    apply_conditions,
    apply_holm,
    check_figure,
    compare_frames,
    match_keys,
    why_apart,
)
from bench.analysis.regress.config import DEFAULT_FIGURES, FigureRule, RegressConfig, load_config
from bench.analysis.regress.paired import compare_paired, is_ab, paired_check
from bench.analysis.regress.render import as_json, render, render_markdown, verdict_lines
from bench.analysis.regress.result import Configuration, FigureCheck, RegressResult, Verdict, figure_label
from bench.analysis.regress.stats import (
    TRIM,
    holm_adjust,
    mann_whitney_p,
    paired_p,
    paired_queries_p,
    prediction_p,
    run_noise_p,
    smallest_p,
    trimmed_pairs,
)
from bench.errors import UserError
from bench.results import keys

__all__ = ["DEFAULT_FIGURES", "TRIM", "Configuration", "FigureCheck", "FigureRule", "RegressConfig", "RegressResult",
           "Verdict", "apply_conditions", "apply_holm", "as_json", "check_figure", "compare_frames",
           "compare_paired", "figure_label", "holm_adjust", "is_ab", "load_config", "mann_whitney_p", "match_keys",
           "paired_check", "paired_p", "paired_queries_p", "prediction_p", "regress", "render", "render_markdown",
           "run_noise_p", "smallest_p", "trimmed_pairs", "verdict_lines", "why_apart"]


def regress(baseline: str | Path | None, candidate: str | Path, config: str | Path | None = None,
            across: Sequence[str] = (), allow_incomplete: bool = False) -> RegressResult:
    """Candidate against baseline; with no baseline, the candidate must be an A/B run (bench ab), and its arm B
    is compared with its arm A, trial pair by trial pair."""
    for a in across:
        if a not in keys.GROUPS and a not in keys.names():
            raise UserError(f"--across {a!r} is neither a key group nor a result key",
                            f"use one of {', '.join(keys.GROUPS)} or a key such as index_m")
    cfg = load_config(config)
    if baseline is None:
        df = trials_frame([candidate])
        if not is_ab(df):
            raise UserError(f"{candidate} is not an A/B run (its rows carry no arms A and B), and no --baseline "
                            "was given", "give --baseline, or a run folder made by `bench ab`")
        notes = require_complete(df, "A/B run", allow_incomplete) + failed_trial_notes(df, "A/B run")
        res = compare_paired(df, cfg, str(candidate), across)
        res.notes += notes
        return res
    base = trials_frame([baseline])
    cand = trials_frame([candidate])
    notes = require_complete(base, "baseline", allow_incomplete) + require_complete(cand, "candidate",
                                                                                    allow_incomplete)
    notes += failed_trial_notes(base, "baseline") + failed_trial_notes(cand, "candidate")
    res = compare_frames(base, cand, cfg, str(baseline), str(candidate), across)
    res.notes += notes
    return res
