"""Profile the web workers under the webhook-ack load with py-spy (`pip install py-spy`).

    python -m bench.profile_web [--target bridge|reference] [--seconds 12] [--connections 16] [--top 40]

Starts Redis and one gunicorn (Procfile `web:` command line), drives it with the same signed
bodies as bench.webhook_ack, samples every gunicorn worker with py-spy and prints the
functions with the most samples, inclusive and self."""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time

from bench.common import bridge, log, start_redis, tmpdir, tree, web_command
from bench.loadgen import ensure_wrk, run_python, run_wrk, write_bodies
from bench.webhook_ack import make_bodies
from config.sandbox import sandbox_keypair
from sandbox.procs import answers, wait_until


def summarise(raw_files: list, top: int = 40) -> str:
    inclusive, self_time = collections.Counter(), collections.Counter()
    total = 0
    for path in raw_files:
        for line in open(path, errors="replace"):
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [
                f.split(" (", 1)[0]
                + " ("
                + f.split(" (", 1)[1].split(":")[0].replace(sys.prefix, "venv").split("site-packages/")[-1]
                + ")"
                if " (" in f
                else f
                for f in stack.split(";")
            ]
            if any("idle" in f for f in frames[-1:]):
                continue
            total += n
            for f in set(frames):
                inclusive[f] += n
            self_time[frames[-1]] += n
    out = [f"{total} samples (active, all workers)", "", "inclusive %  function"]
    out += [f"{100 * c / total:10.1f}  {f}" for f, c in inclusive.most_common(top)]
    out += ["", "self %       function"]
    out += [f"{100 * c / total:10.1f}  {f}" for f, c in self_time.most_common(top // 2)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("bridge", "reference"), default="bridge")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=40, help="functions listed (inclusive; half as many self)")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    tmp = tmpdir("prof")
    server = start_redis()
    _, pem = sandbox_keypair(tmp)
    procs = bridge(server.url, "http://127.0.0.1:9", pem, tmp)
    url = procs.url
    try:
        reference = web_command("'bench.reference_app:app'") if args.target == "reference" else None
        proc = procs.start("web", command=reference)
        wait_until(lambda: answers(url + "/healthz", ok=(200, 404, 405)), 30, what="the web process")
        prefix = tmp / "bodies"
        write_bodies(prefix, make_bodies(int(9000 * (args.seconds + 3)), 2, "p0"))
        wrk = ensure_wrk()
        target = url + "/webhooks/zalo"
        workers = [p for p in tree(proc.pid) if p != proc.pid]
        raws = [tmp / f"spy-{p}.txt" for p in workers]
        spies = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(p),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--gil",
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for p, raw in zip(workers, raws, strict=True)
        ]
        time.sleep(0.5)
        result = (
            run_wrk(wrk, target, prefix, 2, args.connections, args.seconds + 1)
            if wrk
            else run_python(target, prefix, 2, args.connections, args.seconds + 1)
        )
        for s in spies:
            s.wait(60)
        log(f"{args.target}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms")
        print(summarise([r for r in raws if r.exists()], args.top))
    finally:
        procs.stop()
        server.stop()


if __name__ == "__main__":
    main()
