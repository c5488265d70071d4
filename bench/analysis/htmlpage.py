"""One self-contained HTML page: the chart library (plotly.js, from the plotly package) inline, tables that sort
(click a heading) and filter (type in the box above), a style that fits the page. No server, no network: the
file opens from disk or from a CI artifact."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

NUMERIC_HINT = ("QPS", " us", "recall", " s", "MiB", "ef", "k", "conc", "rate", "n", "dim", "cores", "vs ")


@cache
def plotly_js() -> str:
    """plotly.min.js as shipped inside the plotly package (so the page needs no network)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8")


def _cell(text: str, numeric: bool) -> str:
    """A cell; a figure's spread (`1,587 [1,578-2,039]`) goes under the median in small type, so the column
    stays narrow."""
    if " [" in text and text.endswith("]"):
        main, spread = text.split(" [", 1)
        body = f"{html.escape(main)}<br><span class='spread'>[{html.escape(spread)}</span>"
    else:
        body = html.escape(text)
    return f"<td class='num'>{body}</td>" if numeric else f"<td>{body}</td>"


def _is_numeric(head: str, cells: list[str]) -> bool:
    values = [c for c in cells if c not in ("-", "")]
    if not values:
        return any(head.endswith(h) or head == h.strip() for h in NUMERIC_HINT)
    return all(v.replace(",", "").split(" ")[0].replace(".", "", 1).lstrip("-").isdigit() for v in values)


def table(heads: list[str], rows: list[list[str]], caption: str | None = None, css: str = "") -> str:
    """A sortable, filterable table (numbers right-aligned, text left-aligned), in a box that scrolls sideways
    rather than overflowing the page."""
    numeric = [_is_numeric(h, [r[i] for r in rows]) for i, h in enumerate(heads)]
    head = "".join(f"<th class='{'num' if n else ''}' title='click to sort'>{html.escape(h)}</th>"
                   for h, n in zip(heads, numeric, strict=True))
    body = "".join("<tr>" + "".join(_cell(c, n) for c, n in zip(r, numeric, strict=True)) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f"<div class='tablebox {css}'><input class='filter' type='search' placeholder='filter rows...' "
            f"aria-label='filter rows'><table class='sortable'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #dde2ea; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: var(--fg); }
header { padding: 1.2em 2em 0.8em; border-bottom: 1px solid var(--line); background: #f7f9fc; }
header h1 { margin: 0 0 0.3em; font-size: 1.5em; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; margin: 0.4em 0;
            font-size: 0.9em; }
header dt { color: var(--muted); } header dd { margin: 0; }
nav { position: sticky; top: 0; background: white; border-bottom: 1px solid var(--line); padding: 0.4em 2em;
      font-size: 0.9em; z-index: 10; }
nav a { margin-right: 1.2em; color: var(--accent); text-decoration: none; }
main { padding: 0 2em 2em; max-width: 1500px; }
h2 { margin-top: 1.6em; border-bottom: 1px solid var(--line); padding-bottom: 0.2em; }
p.lead, p.note { color: var(--muted); font-size: 0.9em; max-width: 70em; }
.tablebox { overflow-x: auto; margin: 0.5em 0 1.2em; }
input.filter { margin: 0.2em 0 0.4em; padding: 0.3em 0.5em; width: 18em; border: 1px solid var(--line);
               border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.82em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f4f8; cursor: pointer; white-space: nowrap; position: sticky; top: 0; }
th.sorted-asc::after { content: ' \\25B2'; font-size: 0.7em; } th.sorted-desc::after { content: ' \\25BC'; font-size: 0.7em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.spread { color: var(--muted); font-size: 0.85em; }
tr:hover td { background: #f5f8ff; }
caption { text-align: left; color: var(--muted); padding: 0.2em 0; }
.chart { border: 1px solid var(--line); border-radius: 6px; margin: 0.6em 0 1em; padding: 0.3em; }
ul.notdrawn li, ul.notes li { color: var(--muted); font-size: 0.9em; }
details summary { cursor: pointer; color: var(--accent); margin: 0.4em 0; }
"""

SCRIPT = """
(function () {
  function key(td) {
    var t = td.textContent.trim();
    var n = parseFloat(t.replace(/,/g, ''));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = !th.classList.contains('sorted-asc');
        Array.prototype.forEach.call(heads, function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
        th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          var xn = typeof x === 'number', yn = typeof y === 'number';
          if (xn !== yn) { return xn ? -1 : 1; }   // numbers before '-' whichever the direction
          var c = x < y ? -1 : (x > y ? 1 : 0);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
    var box = table.parentNode.querySelector('input.filter');
    if (box) {
      box.addEventListener('input', function () {
        var q = box.value.toLowerCase();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
        });
      });
    }
  });
  document.body.setAttribute('data-tables-ready', document.querySelectorAll('table.sortable').length);
})();
"""


def page(title: str, header: list[tuple[str, str]], nav: list[tuple[str, str]], body: str,
         with_charts: bool = True, head: str = "") -> str:
    """The whole page: header facts (label, text), navigation links (anchor, text), the body's HTML; `head` is
    more of the page's <head> (the report's list of its files)."""
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in header)
    links = "".join(f"<a href='#{html.escape(a)}'>{html.escape(t)}</a>" for a, t in nav)
    lib = f"<script>{plotly_js()}</script>" if with_charts else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{head}<title>{html.escape(title)}</title><style>{STYLE}</style>{lib}</head>
<body>
<header><h1>{html.escape(title)}</h1><dl>{facts}</dl></header>
<nav>{links}</nav>
<main>
{body}
</main>
<script>{SCRIPT}</script>
</body></html>
"""
