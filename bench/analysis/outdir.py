"""The report's folder (`bench report --out DIR`): every file is written into a staging folder beside DIR, then put
in place at once, so a report never mixes files of two builds and a failed write leaves the old report whole.

index.html lists the files the report wrote (a `bench-report-files` meta tag). When DIR is rebuilt, those files
are its own: they are replaced, and the ones the new report does not write are removed (no stale PNG stays beside
the new page). Anything else in DIR (a file or folder the user put there, another report in a subfolder) is left
alone: then the new files are moved in one by one instead of swapping the whole folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.results.writer import default_mode

INDEX = "index.html"
MANIFEST = re.compile(r"<meta name=['\"]bench-report-files['\"] content=['\"]([^'\"]*)['\"]")


def manifest_tag(names: list[str]) -> str:
    """The tag index.html carries: the files this report wrote."""
    return f"<meta name='bench-report-files' content='{' '.join(names)}'>"


def own_files(target: Path) -> set[str]:
    """The files an earlier bench report wrote in `target`: those its index.html lists, or for a page older than
    the list, index.html and the PNG files beside it. Empty when `target` holds no bench report."""
    index = target / INDEX
    try:
        head = index.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return set()
    found = MANIFEST.search(head)
    if found:
        return {INDEX, *found.group(1).split()}
    if "<title>bench report" in head:
        return {INDEX, *(p.name for p in target.glob("*.png"))}
    return set()


@dataclass
class Staging:
    target: Path  # the folder the report ends up in, as the user named it
    path: Path  # the staging folder beside it, hidden
    real: Path  # the target, resolved (renames need its true name even for `--out .`)

    def write(self, name: str, write: Callable[[Path], None]) -> Path:
        """Write one file of the report by `write(path in the staging folder)`; returns its final path. A
        failure names the final file and removes the staging folder."""
        try:
            write(self.path / name)
        except OSError as e:
            self.discard()
            kept = f"the report in {self.target} is left as it was" if self.target.exists() else "nothing was written"
            raise UserError(f"Cannot write {self.target / name} ({e.strerror or e}); {kept}",
                            "free some space or choose another --out folder you may write to") from None
        return self.target / name

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def install(self, names: list[str]) -> None:
        """Put the staged files in place of the target's own files."""
        try:
            if not self.real.exists():
                os.rename(self.path, self.real)
            elif {p.name for p in self.real.iterdir()} <= own_files(self.real):
                self._swap()
            else:
                self._merge(names)
        except OSError as e:
            self.discard()
            raise UserError(f"Cannot put the report in place in {self.target} ({e.strerror or e})",
                            "choose another --out folder you may write to") from None

    def _swap(self) -> None:
        """The target holds only an earlier report's files: swap the whole folder (two renames)."""
        old = self.path.with_name(f".{self.real.name}.old-{secrets.token_hex(4)}")
        os.rename(self.real, old)
        try:
            os.rename(self.path, self.real)
        except OSError:
            os.rename(old, self.real)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _merge(self, names: list[str]) -> None:
        """The target holds files that are not the report's: move the new files in one by one (index.html last),
        then remove the earlier report's files the new one does not write."""
        stale = own_files(self.real) - set(names) - {INDEX}
        for name in sorted(names, key=lambda n: n == INDEX):
            os.replace(self.path / name, self.real / name)
        for name in stale:
            (self.real / name).unlink(missing_ok=True)
        self.discard()


def stage(target: Path) -> Staging:
    """A fresh staging folder beside `target` (the same file system, so it renames into place)."""
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file, not a folder", "give a folder for the report (a new one is made)")
    try:
        real = target.resolve()
        real.parent.mkdir(parents=True, exist_ok=True)
        path = real.parent / f".{real.name}.tmp-{secrets.token_hex(4)}"
        os.mkdir(path, default_mode(directory=True))
    except OSError as e:
        raise UserError(f"Cannot create the report folder {target} ({e.strerror or e})",
                        "choose a writable --out") from None
    return Staging(target, path, real)
