"""Benchmarks: real gunicorn web + worker processes, a real Redis, the sandbox simulators as
partners. `python -m bench.run_all` (or `make bench`) runs them all and prints one table;
each module is also runnable alone (`python -m bench.webhook_ack`, ...). See BENCHMARKS.md."""
