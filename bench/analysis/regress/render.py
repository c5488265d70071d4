"""`bench regress` as text: the terminal (a rich table, the verdict first, the method with -v), markdown (the CI
job summary), HTML and JSON. Every format shows each configuration's headline figures (the summary's, under their
plain names) and, beside them, what the test compared under its own name."""

from __future__ import annotations

import html
import io
import json
from dataclasses import asdict

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from bench.analysis.regress.result import FigureCheck, RegressResult, figure_label, key_text

PAIRED_TEXT = ("an interleaved A/B run: arm B (candidate) against arm A (baseline), their trials paired in time; a "
               "regression is a change for the worse beyond the tolerance that a trimmed paired t-test (Yuen's, "
               "20% of the pairs cut from each end) on the pairs' log ratios (recall: a Wilcoxon signed-rank test on "
               "the queries) also finds clear")
STORED_TEXT = ("a regression is a change for the worse beyond the tolerance that a two-sided test also finds clear: "
               "recall by a Wilcoxon signed-rank test on the queries paired across runs; the other figures against "
               "a one-run baseline by a z-test with the machine's run-to-run spread (`run_sd` in the config; else a "
               "Mann-Whitney U test on the trials), and against several baseline runs by the prediction interval "
               "of their medians (the change then counts from their mean)")
HEADLINE_TEXT = ("The baseline and candidate columns are the configurations' headline figures, as the run's summary "
                 "and `bench compare` show them (QPS and recall: the trimmed median of the ok trials; latency "
                 "percentiles: from the merged histogram of the ok trials). A latency test needs one value per "
                 "trial, so it compares the median of the trials' own percentiles, named in the 'tested on' "
                 "column with its values; the change is of what was tested.")
ONE_RUN_TEXT = ("the baseline is one run: its Mann-Whitney test sees how the trials of one run spread, not how runs "
                "do; keep several baseline runs (`bench baseline save RUN --name NAME --append --keep 5`) for alarms "
                "that hold across runs")


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0 or 0.01 <= abs(v) < 1e7:
        return f"{v:,.4g}" if abs(v) < 10 else f"{v:,.0f}"
    return f"{v:.3g}"


def _p(v: float) -> str:
    return f"{v:.2g}"


def verdict_lines(r: RegressResult) -> list[str]:
    """The answer, first: 'no regression', or one line per regression naming the configuration in full, the
    figure, its change and the Holm-adjusted p."""
    if not r.regressions:
        configs = len({key_text(c.key) for c in r.checks})
        return [f"no regression ({len(r.checks)} checks of {configs} configuration{'s' if configs != 1 else ''})"]
    return [f"regression: {key_text(c.key)} {figure_label(c.figure).removesuffix(' us')} {c.describe_change()} "
            f"(p={_p(c.p_adjusted)})" for c in r.regressions]


def unit_text(c: FigureCheck) -> str:
    """The test and its unit, e.g. 'one run a side, with the configured run-to-run spread'."""
    if c.test == "wilcoxon":
        return f"Wilcoxon, {c.n_baseline} queries paired"
    if c.test == "prediction":
        return f"prediction interval of {c.baseline_runs} baseline runs"
    if c.test == "run-noise":
        return "one run a side, with the configured run-to-run spread"
    if c.test == "paired":
        return f"Yuen, {c.n_baseline} pairs of interleaved trials"
    return f"Mann-Whitney, {c.n_baseline} vs {c.n_candidate} trials"


def evidence(c: FigureCheck) -> str:
    p = f"p = {c.p:.3g}" + (f" (Holm {c.p_adjusted:.3g})" if c.p_adjusted != c.p else "")
    return f"{p}, {unit_text(c)}"


def _tested(c: FigureCheck) -> str:
    """What the test compared, by its own name, with its values when they are not the headline's."""
    name = c.statistic()
    if name == "headline" or c.test == "paired" or not c.in_summary:
        return name
    if c.baseline_runs > 1 and c.baseline_range is not None:
        name += f" ({fmt(c.baseline_range[0])}-{fmt(c.baseline_range[1])})"
    return f"{name}: {fmt(c.baseline)} -> {fmt(c.candidate)}"


def _verdict_cell(c: FigureCheck) -> str:
    return c.verdict + (" (the machine)" if c.reason and c.verdict == "unclear" else "")


def _tolerance(c: FigureCheck) -> str:
    return f"{c.tolerance:.0%}" if c.relative else f"{c.tolerance:g}"


HEADS = ["configuration", "figure", "baseline", "candidate", "tested on", "change", "tolerance", "test", "p",
         "p (Holm)", "verdict"]


def table_rows(checks: list[FigureCheck], verdicts: bool = True) -> list[list[str]]:
    """One row per check: the configuration in full, the figure's plain name, the headline figures, what was
    tested, the change, tolerance, test, p-values and (verdicts) the verdict."""
    rows = []
    for c in checks:
        row = [key_text(c.key), figure_label(c.figure),
               fmt(c.headline_baseline), fmt(c.headline_candidate), _tested(c), c.describe_change(),
               _tolerance(c), unit_text(c), _p(c.p), _p(c.p_adjusted)]
        rows.append(row + ([_verdict_cell(c)] if verdicts else []))
    return rows


def side_notes(r: RegressResult) -> list[str]:
    """What else the reader should know: changes not counted, configurations on one side only, notes."""
    lines = []
    for c in r.checks:
        label = figure_label(c.figure)
        if c.verdict == "unclear" and c.worse and c.reason:
            lines.append(f"{label} looks worse in {key_text(c.key)} ({c.describe_change()}, {evidence(c)}) but is "
                         f"not counted: {c.reason}")
        elif c.verdict == "unclear" and c.worse:
            lines.append(f"{label} looks worse in {key_text(c.key)} ({c.describe_change()}) but not clearly beyond "
                         f"the noise ({evidence(c)}): not counted")
        elif c.verdict == "too few trials" and c.worse:
            lines.append(f"{label} moved {c.describe_change()} in {key_text(c.key)}, but {c.n_baseline} vs "
                         f"{c.n_candidate} trials can never reach p < {r.alpha:g}: run at least 4 trials a side")
        elif c.verdict == "regression" and c.note:
            lines.append(f"{label} in {key_text(c.key)}: {c.note}")
    if any(c.test == "mann-whitney" and c.figure != "recall" for c in r.checks):
        lines.append(ONE_RUN_TEXT)
    lines += [f"only in the baseline (not compared): {key_text(k)}" for k in r.only_baseline]
    lines += [f"only in the candidate (not compared): {key_text(k)}" for k in r.only_candidate]
    return lines + list(r.notes)


def method_text(r: RegressResult) -> str:
    return (f"{PAIRED_TEXT if r.paired else STORED_TEXT} (p < {r.alpha:g}). The p-values are Holm-Bonferroni "
            "adjusted over every check of the comparison, so the chance of any false alarm stays below alpha. A "
            "change the sentinel shows too, or one measured on a busier machine than its baseline, is unclear, "
            "never a regression. " + HEADLINE_TEXT)


# -- terminal ---------------------------------------------------------------------------------------------

DROP = {"test": 4, "p": 3, "tolerance": 2, "p (Holm)": 1}  # how soon a column leaves a narrow terminal


def render_terminal(r: RegressResult, width: int = 100, verbose: bool = False) -> str:
    """The verdict first, then the checks, one rich table per configuration (its full name as the title, wrapped,
    never cut; the tables share their columns' widths), what was not counted and why; with `verbose`, the method
    and the sentinel's own table."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(width=width, file=buf, color_system=None, highlight=False, soft_wrap=False)
    for line in verdict_lines(r):
        console.print(line, markup=False, soft_wrap=True)
    console.print(f"baseline {r.baseline}, candidate {r.candidate}", markup=False, soft_wrap=True)
    dropped = _print_tables(console, r.checks, HEADS[1:], width)
    if dropped:
        console.print(f"left out to fit {width} columns: {', '.join(dropped)} (--format markdown has every "
                      "column)", markup=False)
    for line in side_notes(r):
        console.print(f"- {line}", markup=False, soft_wrap=True)
    if r.sentinel and verbose:
        console.print("sentinel: how far the machine moved (the fixed reference measurement; not verdicts)",
                      soft_wrap=True)
        _print_tables(console, r.sentinel, HEADS[1:-1], width)
    elif r.sentinel:
        moved = ", ".join(f"{figure_label(c.figure)} {c.describe_change()}" for c in r.sentinel)
        console.print(f"- the sentinel (the machine's reference measurement) moved: {moved} (-v for its table)",
                      markup=False, soft_wrap=True)
    if verbose:
        console.print("")
        console.print("method: " + method_text(r), markup=False)
    else:
        console.print("(-v explains the method)", markup=False, soft_wrap=True)
    return buf.getvalue()


WRAP = ("tested on", "verdict")
RIGHT = ("baseline", "candidate", "change", "p", "p (Holm)")


def _print_tables(console: Console, checks: list[FigureCheck], heads: list[str], width: int) -> list[str]:
    """One table per configuration, all with the same column widths, fitted to `width`; returns the heads left
    out."""
    verdicts = heads[-1] == "verdict"
    rows = [row[1:] for row in table_rows(checks, verdicts=verdicts)]
    keep, widths = _widths(heads, rows, width)
    by_config: dict[str, list[list[str]]] = {}
    for c, row in zip(checks, rows, strict=True):
        by_config.setdefault(key_text(c.key), []).append(row)
    if keep is None:  # narrower than any table: one line a figure, wrapped at spaces
        for name, group in by_config.items():
            console.print(name, markup=False)
            for row in group:
                console.print(f"  {row[0]}: " + "; ".join(f"{h} {v}" for h, v in zip(heads[1:], row[1:], strict=True)),
                              markup=False)
        return []
    for n, (name, group) in enumerate(by_config.items()):
        t = Table(title=name, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1),
                  show_edge=False, show_header=n == 0)
        for i in keep:
            t.add_column(heads[i], justify="right" if heads[i] in RIGHT else "left", no_wrap=heads[i] not in WRAP,
                         overflow="fold", width=widths[i])
        for row in group:
            t.add_row(*(row[i] for i in keep))
        console.print(t)
    return [h for i, h in enumerate(heads) if i not in keep]


WANT = {"tested on": 22, "verdict": 16}  # a wrapping column's comfortable width: columns go before it is narrower


def _widths(heads: list[str], rows: list[list[str]], width: int) -> tuple[list[int] | None, dict[int, int]]:
    """The columns kept (the least needed left out first, DROP) and each one's width: every cell whole, a
    wrapping column no narrower than its longest word, the room left going to the wrapping columns. Columns are
    left out to give the wrapping ones a comfortable width (WANT) where that is possible, else only as far as
    every word fits; None when not even that fits."""
    natural = {i: max(cell_len(x) for x in [h, *(r[i] for r in rows)]) for i, h in enumerate(heads)}
    least = {i: (max(cell_len(w) for x in [h, *(r[i] for r in rows)] for w in x.split() or [""])
                 if h in WRAP else natural[i]) for i, h in enumerate(heads)}
    want = {i: max(least[i], min(natural[i], WANT.get(h, natural[i]))) for i, h in enumerate(heads)}
    order = sorted((i for i, h in enumerate(heads) if h in DROP), key=lambda i: -DROP[heads[i]])

    def total(ws: dict[int, int], keep: list[int]) -> int:
        return sum(ws[i] + 3 for i in keep) - 1  # one space of padding each side, one between columns

    def kept(ws: dict[int, int]) -> list[int] | None:
        keep = list(range(len(heads)))
        for i in [None, *order]:
            if i is not None:
                keep.remove(i)
            if total(ws, keep) <= width:
                return keep
        return None

    keep = kept(want) or kept(least)
    if keep is None:
        return None, {}
    widths = dict(least)
    for goal in (want, natural):  # the room left: first up to the comfortable width, then to the whole cell
        for i in keep:
            if heads[i] in WRAP:
                widths[i] = max(widths[i], min(goal[i], widths[i] + width - total(widths, keep)))
    return keep, widths


# -- markdown, HTML, JSON -----------------------------------------------------------------------------------

def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(heads: list[str], rows: list[list[str]]) -> list[str]:
    return [_md_row(heads), "|" + "---|" * len(heads), *(_md_row(r) for r in rows)]


def render_markdown(r: RegressResult) -> str:
    verdict = verdict_lines(r)
    lines = [f"## bench regress: {verdict[0] if len(verdict) == 1 else f'{len(verdict)} regressions'}", ""]
    if len(verdict) > 1 or r.regressions:
        lines += [f"- **{v}**" for v in verdict] + [""]
    lines += [f"baseline `{r.baseline}`, candidate `{r.candidate}`; {method_text(r)}", ""]
    lines += _md_table(HEADS, [[f"**{c}**" if c == "regression" else c for c in row]
                               for row in table_rows(r.checks)])
    if r.sentinel:
        lines += ["", "### sentinel: how far the machine moved (the fixed reference measurement; not verdicts)", ""]
        lines += _md_table(HEADS[:-1], table_rows(r.sentinel, verdicts=False))
    notes = side_notes(r)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def render_html(r: RegressResult) -> str:
    from bench.analysis import htmlpage

    parts = ["<section class='bench-regress'>"]
    parts += [f"<p class='verdict'><strong>{html.escape(v)}</strong></p>" for v in verdict_lines(r)]
    parts.append(htmlpage.table(HEADS, table_rows(r.checks)))
    if r.sentinel:
        parts += ["<h3>sentinel: how far the machine moved (not verdicts)</h3>",
                  htmlpage.table(HEADS[:-1], table_rows(r.sentinel, verdicts=False))]
    notes = side_notes(r)
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts += [f"<p class='method'>{html.escape(method_text(r))}</p>", "</section>"]
    header = [("baseline", r.baseline), ("candidate", r.candidate)]
    return htmlpage.page("bench regress", header, [], "\n".join(parts), with_charts=False)


def _check_json(c: FigureCheck) -> dict:
    """A check as JSON: `baseline` and `candidate` are the headline figures (the summary's); what the test
    compared is `tested_baseline` / `tested_candidate`, named by `statistic`."""
    d = asdict(c)
    d["tested_baseline"], d["tested_candidate"] = d.pop("baseline"), d.pop("candidate")
    d["baseline"], d["candidate"] = d.pop("headline_baseline"), d.pop("headline_candidate")
    d["label"], d["statistic"] = figure_label(c.figure), c.statistic()
    return d


def as_json(r: RegressResult) -> str:
    return json.dumps({"verdict": verdict_lines(r), "baseline": r.baseline, "candidate": r.candidate,
                       "alpha": r.alpha, "regressions": len(r.regressions),
                       "configurations": [asdict(c) for c in r.configurations],
                       "checks": [_check_json(c) for c in r.checks], "only_baseline": r.only_baseline,
                       "only_candidate": r.only_candidate, "notes": side_notes(r), "paired": r.paired,
                       "sentinel": [_check_json(c) for c in r.sentinel], "method": method_text(r)},
                      indent=2, default=str)


def render(r: RegressResult, fmt_name: str, width: int = 100, verbose: bool = False) -> str:
    """The result in one format: table (the terminal), markdown, html or json."""
    if fmt_name == "json":
        return as_json(r) + "\n"
    if fmt_name == "markdown":
        return render_markdown(r)
    if fmt_name == "html":
        return render_html(r)
    return render_terminal(r, width, verbose)
