"""Human-readable sizes for messages: 1.5 GiB, 730 MiB, 12 KiB, 512 B (never "0.0 GiB")."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """`n` bytes in the largest binary unit that keeps the number at least 1: three significant figures below
    100 of a unit (1.50 GiB, 12.3 MiB), whole numbers above, plain bytes below 1 KiB."""
    n = float(n)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            if unit == "B":
                return f"{sign}{n:.0f} B"
            return f"{sign}{n:.3g} {unit}" if n < 100 else f"{sign}{n:,.0f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
