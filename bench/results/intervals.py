"""Per-second interval histograms in HdrHistogram's interval log format (readable by HistogramLogProcessor,
HdrHistogram's plotters and hdrh.log.HistogramLogReader), one file per operation kind and trial."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hdrh.log import HistogramLogWriter

from bench.metrics import hdr
from bench.results.writer import write_text


def write_interval_logs(folder: Path, stem: str, results) -> list[Path]:
    by_label: dict[str, list[tuple[float, float, str]]] = {}
    for r in results:
        for start, end, label, enc in r.intervals:
            by_label.setdefault(label, []).append((start, end, enc))
    if not by_label:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    base = min(s for items in by_label.values() for s, _, _ in items)
    paths = []
    for label, items in by_label.items():
        # Merge the workers' intervals that fall into the same second since the trial's start.
        buckets: dict[int, list] = {}
        for start, end, enc in items:
            buckets.setdefault(int(start - base), []).append((start, end, enc))
        lines = _Lines()
        w = HistogramLogWriter(lines)
        w.output_comment(f"[Logged with bench, {label} latency in microseconds]")
        w.output_log_format_version()
        lines.write(f"#[StartTime: {base:.3f} (seconds since epoch), {datetime.fromtimestamp(base, UTC).isoformat()}]\n")
        w.output_base_time(int(base * 1000))
        w.output_legend()
        for sec in sorted(buckets):
            group = buckets[sec]
            h = hdr.merge(e for _, _, e in group)
            s0 = min(s for s, _, _ in group) - base
            s1 = max(e for _, e, _ in group) - base
            # max_value_unit_ratio=1: the Interval_Max column stays in microseconds, like the histogram values
            w.output_interval_histogram(h, start_time_stamp_sec=max(s0, 1e-6), end_time_stamp_sec=max(s1, s0 + 1e-6),
                                        max_value_unit_ratio=1.0)
        path = folder / f"{stem}.{label}.hlog"
        write_text(path, "".join(lines.parts), checked=True)
        paths.append(path)
    return paths


class _Lines:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> None:
        self.parts.append(s)

    def close(self) -> None:
        pass
