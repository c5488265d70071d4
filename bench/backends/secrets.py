"""Secrets in backend options: kept out of results, readable from the environment or a file.

An adapter marks a secret field with the `Secret` type (pydantic `SecretStr`):

    api_key: Secret = Field(SecretStr(""), description="API key; env:NAME or file:PATH reads it from there")

In a config file or `--set`, a secret is given literally or as a reference, which is resolved when the options
are validated (the adapter reads the real value with `.get_secret_value()` when it connects):

    api_key = "env:QDRANT_API_KEY"         # from an environment variable
    api_key = "file:~/.config/qdrant.key"  # from a file (its first line, surrounding whitespace dropped)

What is written to results never holds one: `public_options(options)` is the options as JSON with every secret
replaced by `***sha256:` and the first 8 hex digits of its SHA-256 (runs with the same key stay comparable, and
32 bits cannot give a strong key back), and the password inside any connection string (a URL's
`user:password@`, libpq's `password=...`) replaced by `***`; `redact_command(command)` does the same to the
command line a run stores (`--set backend.api_key=...`, DSN passwords, `PASSWORD=...` assignments).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, SecretStr
from pydantic_core import to_jsonable_python

REDACTED = "***"
ENV_PREFIX, FILE_PREFIX = "env:", "file:"


def _resolve(value: Any) -> Any:
    """`env:NAME` and `file:PATH` references become the secret they point to; anything else passes through."""
    if not isinstance(value, str):
        return value
    if value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name not in os.environ:
            raise ValueError(f"it refers to the environment variable {name}, which is not set; set it or give the "
                             "value another way")
        return os.environ[name]
    if value.startswith(FILE_PREFIX):
        path = Path(value[len(FILE_PREFIX):]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"it refers to the file {path}, which cannot be read "
                             f"({getattr(e, 'strerror', None) or e})") from None
        return (text.strip().splitlines() or [""])[0].strip()
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve)]


def fingerprint(secret: str) -> str:
    """What results show instead of a secret: `***sha256:` and 8 hex digits (empty stays empty)."""
    if not secret:
        return ""
    return f"{REDACTED}sha256:{hashlib.sha256(secret.encode()).hexdigest()[:8]}"


# A URL's user:password@ (postgresql://, http://, ...), and key=value pairs whose key names a secret (libpq's
# password=..., PGPASSWORD=..., ?api_key=...). A value already redacted, or a reference, is left as it is.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):(?P<pw>[^@/\s]+)@")
_SECRET_WORD = r"[A-Za-z0-9_]*(?:password|passwd|pwd|api_?key|apikey|token|secret)"
_KEY_VALUE = re.compile(rf"(?P<key>\b{_SECRET_WORD})(?P<eq>\s*=\s*)"
                        r"(?:(?P<q>['\"])(?P<qval>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<val>[^\s'\"&]+))", re.IGNORECASE)
_SECRET_KEY = re.compile(rf"^{_SECRET_WORD}$", re.IGNORECASE)


def _kept(value: str) -> bool:
    return value.startswith((REDACTED, ENV_PREFIX, FILE_PREFIX))


def redact_text(text: str) -> str:
    """`text` with the passwords of connection strings and of `secret=...` pairs replaced by `***`."""
    text = _URL_PASSWORD.sub(lambda m: m.group(0) if _kept(m.group("pw")) else f"{m.group('head')}:{REDACTED}@",
                             text)
    def key_value(m: re.Match[str]) -> str:
        value, quote = (m.group("qval"), m.group("q")) if m.group("q") else (m.group("val"), "")
        return m.group(0) if _kept(value) else f"{m.group('key')}{m.group('eq')}{quote}{REDACTED}{quote}"

    return _KEY_VALUE.sub(key_value, text)


def _public(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return fingerprint(value.get_secret_value())
    if isinstance(value, BaseModel):
        return public_options(value)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    return to_jsonable_python(value)


def public_options(options: BaseModel) -> dict[str, Any]:
    """The options as JSON-able data, as results may store them: secrets fingerprinted, DSN passwords redacted."""
    return {name: _public(getattr(options, name)) for name in type(options).model_fields}


def _redact_setting(token: str) -> str:
    """`backend.KEY=VALUE` (or `--set=backend.KEY=VALUE`) with a secret KEY: VALUE becomes its fingerprint."""
    m = re.fullmatch(r"(?P<head>(?:--set=)?backend\.(?P<key>[A-Za-z0-9_]+)\s*=)(?P<val>.*)", token, re.DOTALL)
    if m is None or not _SECRET_KEY.match(m.group("key")):
        return token
    raw = m.group("val").strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if not isinstance(value, str) or _kept(value):
        return token
    return f"{m.group('head')}{fingerprint(value)}"


def redact_command(command: str) -> str:
    """The command line a run stores, with `--set backend.<secret>=...` values fingerprinted and connection
    string passwords redacted. Idempotent."""
    try:
        tokens = shlex.split(command)
    except ValueError:  # unbalanced quotes: redact the text as it is
        return redact_text(command)
    return shlex.join(redact_text(_redact_setting(t)) for t in tokens)


def redact_settings(data: Any) -> Any:
    """JSON-able data (a suite's spec) with every `backend.<secret>=...` string and connection string password
    redacted, as in `redact_command`."""
    if isinstance(data, str):
        return redact_text(_redact_setting(data))
    if isinstance(data, dict):
        return {k: redact_settings(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_settings(v) for v in data]
    return data
