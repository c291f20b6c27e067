"""`python -m workers`: the worker process of the Procfile.

It runs WORKER_CONCURRENCY RQ SimpleWorkers (no fork per job: docs/interface.md §1 and
docs/delivery.md, RQ facts 7) as child processes, respawns any that die, and itself runs the
starter that keeps drain jobs queued for due lanes and writes the heartbeat /readyz looks at.
"""

from workers.supervisor import main

if __name__ == "__main__":
    raise SystemExit(main())
