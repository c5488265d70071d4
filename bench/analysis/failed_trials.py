"""Failed trials on either side of a comparison: named, with what they do to the verdict.

A failed trial (error rate above run.error_threshold, a trial that overran its duration, a lost worker) carries
no figure a test may use, so `bench regress` compares the ok trials only; these lines say which trials that left
out, so a verdict of "no regression" is never read as covering trials that never measured.
"""

from __future__ import annotations

import pandas as pd

from bench.results import keys

SHOWN = 5  # failed trials named one by one; more are counted


def failed_trials(df: pd.DataFrame) -> list[str]:
    """`<run> <backend> <workload> <op> <configuration> trial N (<reason>)` for every failed trial row."""
    if "status" not in df:
        return []
    bad = df[df["status"] == "failed"]
    out = []
    for _, r in bad.iterrows():
        reason = r.get("status_reason")
        why = f" ({str(reason)[:120]})" if isinstance(reason, str) and reason else ""
        label = keys.label(r.to_dict())
        out.append(f"{r['run_id']} {r['backend']} {r['workload']} {r['op']}{' ' + label if label else ''} "
                   f"trial {r['trial']}{why}")
    return out


def failed_trial_notes(df: pd.DataFrame, side: str) -> list[str]:
    """One note per side with failed trials: which, and that the verdict leaves them out."""
    names = failed_trials(df)
    if not names:
        return []
    listed = "; ".join(names[:SHOWN]) + (f"; and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    return [f"the {side} holds {len(names)} failed trial(s), left out of the verdict (its tests use only the ok "
            f"trials, so those configurations are judged on fewer trials, and one with no ok trial on a side is not "
            f"compared): {listed}"]
