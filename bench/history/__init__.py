"""`bench history`: every figure of every night kept, its series per configuration, change points found and
attributed, and a page to browse (docs/history.md)."""
