"""User-facing errors.

A `UserError` is a mistake the user can fix (unknown backend, bad config key or value, unreachable server,
dimension mismatch, unreadable dataset). The CLI prints its message as one sentence and exits with code 2,
without a traceback. Bugs raise ordinary exceptions.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import Any


class UserError(Exception):
    """A mistake in the user's input or environment, reported as one sentence with a hint of the fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        # One line, whatever a library's text quoted in it holds (pyarrow's and h5py's messages span lines).
        self.message = " ".join(message.split()).rstrip(".")
        self.hint = " ".join(hint.split()) if hint else hint
        super().__init__(self.sentence())

    def sentence(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint.rstrip('.')}."
        return f"{self.message}."


class ServerUnreachable(UserError):
    """The backend's server did not answer; the hint names how to start it."""


class BackendUnavailable(UserError):
    """The backend's client library is not installed or the engine cannot run on this machine."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C; the command exits with 128 + the signal number."""

    received: int | None = None  # the last one this process got (click reports any interrupt as exit 130)

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        Terminated.received = signum


def raise_terminated(signum: int, frame: Any) -> None:
    """The handler of SIGTERM and SIGHUP: raise `Terminated` in the main thread, as SIGINT raises
    KeyboardInterrupt, so every command (a run, a suite between its cells, a fetch) ends the way Ctrl-C ends it."""
    raise Terminated(signum)


def terminate_on_signals() -> None:
    """Install `raise_terminated` for SIGTERM and SIGHUP (the CLI does, before anything else)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, raise_terminated)


def by_closeness(name: str, choices: Iterable[str]) -> list[str]:
    """`choices` sorted by how closely each resembles `name` (the closest first; ties alphabetically)."""
    import difflib

    def score(c: str) -> float:
        return difflib.SequenceMatcher(None, name.lower(), c.lower()).ratio()

    return sorted(set(choices), key=lambda c: (-score(c), c))


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """"did you mean 'X'?" for the one choice close enough to be a misspelling of `name`, else None."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else None
