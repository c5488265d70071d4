"""The help layout every `bench` command group shares (bench.cli, bench.datasets.cli, bench.faults.cli): its own
module, so a sub-command's group needs no import of bench.cli (which mounts it)."""

from __future__ import annotations

import typer

# Plain (click) help: it wraps at the terminal's width instead of cutting text with an ellipsis, and shows no
# value placeholder for a boolean flag. -h is --help.
HELP = {"help_option_names": ["-h", "--help"]}


class HelpGroup(typer.core.TyperGroup):
    """Lists each command with the whole first sentence of its help, wrapped, instead of cut with '...'."""

    def format_commands(self, ctx, formatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                first = " ".join((cmd.help or "").split("\n\n")[0].split())
                rows.append((name, first.split(": ")[0].split(". ")[0].rstrip(".")))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
