"""`python -m workers.health`: the worker's own health check (docker-compose.yml, the image
check in bin/image-check). Exit 0 while the worker heartbeat in Redis is fresh, the same
limit /readyz applies; else 1, with the reason on stderr.

The image's HEALTHCHECK polls the web port, which tells nothing about a worker: nothing of the
worker listens there. The heartbeat is written by the supervisor's starter loop once a second
(workers/supervisor.py); a stale one means the loop is stuck or Redis is out of reach. The key
is one per Redis, so with several worker hosts on one Redis it says that a worker beats."""

from __future__ import annotations

import sys
import time

from redis.exceptions import RedisError

from app.bridge.keys import HEARTBEAT
from app.extensions import connect_redis
from app.operations.status import HEARTBEAT_MAX_AGE
from config import ConfigError, load_settings


def heartbeat_age(redis) -> float | None:
    beat = redis.get(HEARTBEAT)
    return time.time() - float(beat) if beat else None


def main() -> int:
    try:
        age = heartbeat_age(connect_redis(load_settings()))
    except ConfigError as exc:
        print(f"unhealthy: config error: {'; '.join(exc.problems)}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"unhealthy: redis unreachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    if age is None or age > HEARTBEAT_MAX_AGE:
        print(f"unhealthy: no fresh worker heartbeat (age {age})", file=sys.stderr)
        return 1
    print(f"healthy: worker heartbeat {age:.1f} s old")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
