"""`make bench`: every benchmark in its own process, one table, BENCHMARKS.md rewritten."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine
from bench.report import table

BENCHES = ["webhook_ack", "relay", "scale_out", "memory", "metrics_cost", "wait_replicas", "slow_clients"]
MARK = "<!-- results -->"


def run_one(name: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="zfb-bench-")) / f"{name}.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", "--json", str(out)], cwd=ROOT, timeout=540)
    if proc.returncode != 0 or not out.exists():
        return {
            "rows": [{"section": name, "metric": "benchmark failed", "value": proc.returncode, "met": False}],
            "seconds": round(time.monotonic() - started, 1),
        }
    return json.loads(out.read_text())


def describe(m: dict) -> str:
    return (
        f"{m['nproc']} cores ({m['cpu'] or 'unknown CPU'}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, gunicorn {m.get('gunicorn', '?')}"
    )


def main() -> int:
    started = time.monotonic()
    results = {name: run_one(name) for name in BENCHES}
    rows = [r for result in results.values() for r in result["rows"]]
    text = table(rows)
    took = ", ".join(f"{n} {r.get('seconds', '?')} s" for n, r in results.items())
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = f"{MARK}\nMeasured {stamp} on {describe(machine())}; took {took}.\n\n{text}\n"
    print(section)
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text() if path.exists() else MARK + "\n"
    head = current.split(MARK)[0]
    tail = current.split(MARK, 1)[1].split("\n<!-- end results -->", 1)
    path.write_text(head + section + "<!-- end results -->" + (tail[1] if len(tail) > 1 else "\n"))
    print(f"(make bench: {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
