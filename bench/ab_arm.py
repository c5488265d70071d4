"""One arm of `bench ab --a-harness/--b-harness`, driven from another process: run with `python -c <this file's
text> <json>` and PYTHONPATH set to the arm's bench checkout, so every `bench` import below is that harness's own
code, not the orchestrator's. Only the standard library is imported here before that.

Protocol: the orchestrator writes one line, `next`, on stdin for each timed trial it wants; this process answers
on the file descriptor named in the json, one JSON object per line: `ready` once the run is loaded and indexed,
`trial` with the label of each trial measured, `end` with the run's status once the run has no trial left (or
stdin closed), `error` with one sentence when the run could not start. Everything the run prints goes to stderr,
which the orchestrator keeps in the run folder.

Needs a harness with `bench.runner.stepwise` and `RunRequest.row_extra` (the commit that added `bench ab`, or
later): bench.ab's probe refuses an older one before this runs.
"""

import json
import os
import sys


def main() -> int:
    args = json.loads(sys.argv[1])
    out = os.fdopen(args.pop("fd"), "w", buffering=1)

    def tell(kind: str, **kw: object) -> None:
        out.write(json.dumps({"kind": kind, **kw}) + "\n")

    from pathlib import Path

    from bench.errors import UserError
    from bench.runner import RunRequest, stepwise

    for name in ("results_dir", "cache_dir"):
        if args.get(name) is not None:
            args[name] = Path(args[name])
    req = RunRequest(**args)
    status = "failed"
    try:
        with stepwise(req) as (ctx, steps):
            tell("ready")
            for line in sys.stdin:
                if line.strip() != "next":
                    break
                label = next(steps, None)
                if label is None:
                    break
                tell("trial", label=label)
        status = ctx.status
    except UserError as e:
        tell("error", message=e.message, hint=e.hint)
        return 2
    except KeyboardInterrupt:
        tell("end", status="interrupted")
        return 130
    tell("end", status=status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
