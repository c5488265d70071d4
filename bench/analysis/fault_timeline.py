"""The timeline of a `bench fault` run in `bench report`: operations per second (successful and failed) and
latency (P50, P99) per sliding window against time since the timed phase began, with the kill and the moment
the service answered again (a restart, or a standby's promotion) marked. Read from the run's own files:
timeline.parquet (one row per window) and fault.json (kill_s, restart_s, node)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

CAPTION = ("Failover timeline of a bench fault run: operations per second in each sliding window (successful, and "
           "failed in red) and the P50 and P99 latency of its successful operations, against seconds since the "
           "timed phase began. The dashed line is the kill; the dotted line is when the service answered again "
           "(the server restarted, or a standby was promoted). P99 is left out of windows with too few operations.")


def runs(paths: Sequence[str | Path]) -> list[Path]:
    """The fault run folders (fault.json and timeline.parquet side by side) under the given paths."""
    out: list[Path] = []
    for p in map(Path, paths):
        found = [p / "fault.json"] if (p / "fault.json").is_file() else sorted(p.rglob("fault.json")) if p.is_dir() else []
        out += [f.parent for f in found if (f.parent / "timeline.parquet").is_file()]
    return list(dict.fromkeys(out))


def fault_only(path: str | Path) -> bool:
    """A path that holds fault runs and no summary file (so the summary readers must not be given it)."""
    p = Path(path)
    return p.is_dir() and bool(runs([p])) and not any(p.rglob("*summary.parquet"))


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def facts(run: Path) -> dict[str, Any]:
    return json.loads((run / "fault.json").read_text())


def figure(run: Path) -> Any:
    """The plotly figure of one fault run's timeline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    f = facts(run)
    rows = pq.read_table(run / "timeline.parquet").to_pylist()
    t = [r["t_s"] + r["window_s"] for r in rows]  # a window is drawn at its end: what was known by then
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("operations per second", "latency (us), successful operations"))
    fig.add_trace(go.Scatter(x=t, y=[r["ok"] / r["window_s"] for r in rows], name="ok/s", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=t, y=[r["errors"] / r["window_s"] for r in rows], name="failed/s", mode="lines",
                             line={"color": "#d62728"}), 1, 1)
    for col, name, dash in (("p50_us", "P50", "dot"), ("p99_us", "P99", "solid")):
        fig.add_trace(go.Scatter(x=t, y=[r[col] for r in rows], name=name, mode="lines", line={"dash": dash}), 2, 1)
    kill, back = _num(f.get("kill_s")), _num(f.get("restart_s"))
    node = f.get("node") or "server"
    if kill is not None:
        fig.add_vline(x=kill, line_dash="dash", line_color="black", annotation_text=f"kill {node}")
        if back is not None:
            what = "promoted" if node == "primary" else "answering again"
            fig.add_vline(x=kill + back, line_dash="dot", line_color="green",
                          annotation_text=f"{what} (+{back:.2f} s)", annotation_position="bottom right")
    fig.update_yaxes(tickformat=",.0f")
    fig.update_xaxes(title_text="seconds since the timed phase began", row=2, col=1)
    fig.update_layout(template="plotly_white", height=560, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      title={"text": f"{f.get('backend')} {f.get('workload')}: {run.name}", "font": {"size": 14}})
    return fig


def summary_line(run: Path) -> str:
    """One sentence of the run's recovery figures."""
    f = facts(run)

    def s(v: Any, unit: str = " s") -> str:
        return "-" if v is None else f"{float(v):,.2f}{unit}"

    lost = f.get("lost_acknowledged_writes")
    return (f"killed {f.get('node') or 'the server'} at {s(f.get('kill_s'))}; answering again after "
            f"{s(f.get('restart_s'))}; first successful operation {s(f.get('first_ok_s'))} after the kill; errors "
            f"until {s(f.get('errors_end_s'))}; acknowledged writes lost: {'-' if lost is None else lost}")
