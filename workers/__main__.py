"""`python -m workers`: the worker process of the Procfile.

It runs WORKER_CONCURRENCY RQ SimpleWorkers (no fork per job; CONTRACT §1) as child
processes, respawns any that die, and itself runs the dispatcher that turns due lanes into
RQ jobs and writes the heartbeat /readyz looks at.
"""

from workers.supervisor import main

if __name__ == "__main__":
    raise SystemExit(main())
