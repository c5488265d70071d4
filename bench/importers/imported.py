"""What an importer makes of one file (`Imported`), what an import wrote (`ImportResult`), and the helpers every
importer shares: the source file's id, secrets and addresses redacted from the parameters kept."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_WORDS = ("password", "api_key", "apikey", "token", "secret", "user_name", "username", "user", "uri", "url")


@dataclass
class Imported:
    """What one importer made of one file: trial rows (keys, figures, provenance) and run.json's extra fields."""

    tool: str
    version: str | None
    run_label: str  # part of the run id
    rows: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # sentences: parts of the file bench does not model


@dataclass
class ImportResult:
    path: Path  # the imported file
    run_dir: Path
    rows: int
    skipped: list[str]


def file_id(path: Path) -> str:
    """`path (sha256 <hex>)`: the source_file column."""
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{path} (sha256 {h})"


def redact(value: Any) -> Any:
    """A copy with every value under a key that names a secret or an address replaced by '(removed)'."""
    if isinstance(value, dict):
        return {k: ("(removed)" if isinstance(k, str) and k.lower() in SECRET_WORDS and v not in (None, "")
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):  # a connection string or key=value text elsewhere: its password redacted
        from bench.backends.secrets import redact_text

        return redact_text(value)
    return value


def params_json(value: Any) -> str:
    return json.dumps(redact(value), sort_keys=True, default=str)
