"""The results table (Markdown, readable in a terminal too)."""

from __future__ import annotations


def fmt(value) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict]) -> str:
    head = "| # | metric | value | goal | met | note |"
    lines = [head, "|---|---|---:|---|:---:|---|"]
    for r in rows:
        met = {True: "yes", False: "**NO**", None: ""}[r.get("met")]
        value = fmt(r["value"]) + (f" {r['unit']}" if r.get("unit") else "")
        lines.append(
            f"| {r['section']} | {r['metric']} | {value} | {r.get('goal', '')} | {met} | {r.get('note', '')} |"
        )
    return "\n".join(lines)
