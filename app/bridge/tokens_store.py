"""Where a connection's Zalo token pair is kept: one Redis hash with both tokens sealed
(app/bridge/secrets_at_rest.py), every other field clear, and the lock a refresher holds.

When and how the pair is refreshed is Zalo's business: app/integrations/zalo/tokens.py
`TokenKeeper`, which is handed this store and so needs no key name and no sealing key.
"""

from __future__ import annotations

from redis import Redis
from redis.lock import Lock

from app.bridge.keys import DEFAULT_KEYS, Keys
from app.bridge.replies import text
from app.bridge.secrets_at_rest import Sealer, UnreadableSecret, is_sealed, sealer_for
from config.settings import Settings

TOKEN = DEFAULT_KEYS.zalo_token
LOCK = DEFAULT_KEYS.zalo_token_lock
SEALED = ("access_token", "refresh_token")  # the secrets; the rest of the hash is bookkeeping


class TokenStore:
    def __init__(self, redis: Redis, sealer: Sealer, keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.sealer = sealer
        self.key, self.lock_key = keys.zalo_token, keys.zalo_token_lock

    @classmethod
    def of(cls, redis: Redis, settings: Settings, keys: Keys = DEFAULT_KEYS) -> TokenStore:
        """The store of the connection whose settings (sealing keys) and keys are given."""
        return cls(redis, sealer_for(settings), keys)

    def raw(self) -> dict:
        """Every field as stored, the tokens still sealed."""
        return {text(k): text(v) for k, v in self.redis.hgetall(self.key).items()}

    def state(self) -> dict:
        """The stored pair with its tokens unsealed; UnreadableSecret when no key opens them."""
        return self._unsealed(self.raw())

    def opened(self, raw: dict) -> dict | None:
        """`raw` with its tokens unsealed; None when no configured key opens them."""
        try:
            return self._unsealed(raw)
        except UnreadableSecret:
            return None

    def _unsealed(self, raw: dict) -> dict:
        return {k: self.sealer.unseal(v) if k in SEALED else v for k, v in raw.items()}

    def replace(self, fields: dict) -> None:
        """Write a whole new pair at once, its tokens sealed (an absent token stays absent)."""
        sealed = {k: self.sealer.seal(v) if k in SEALED and v else v for k, v in fields.items()}
        pipe = self.redis.pipeline()
        pipe.delete(self.key)
        pipe.hset(self.key, mapping=sealed)
        pipe.execute()

    def mark(self, **fields) -> None:
        """Set bookkeeping fields (never the tokens), leaving the pair as it is."""
        self.redis.hset(self.key, mapping=fields)  # type: ignore[arg-type]  # redis-py keys `mapping` invariantly

    def unmark(self, field: str) -> None:
        self.redis.hdel(self.key, field)

    def seal_clear(self, raw: dict) -> list[str]:
        """Rewrite the tokens a `raw` read found in clear (stored by an older version) sealed,
        unless they changed meanwhile: a rotation elsewhere must never be overwritten with the
        old single-use refresh token. The fields rewritten."""
        clear = {k: v for k, v in raw.items() if k in SEALED and v and not is_sealed(v)}
        fields = list(clear)
        if not fields:
            return []

        def swap(pipe) -> bool:
            current = [v.decode() if v is not None else None for v in pipe.hmget(self.key, fields)]
            pipe.multi()
            if current != [clear[f] for f in fields]:
                return False
            pipe.hset(self.key, mapping={f: self.sealer.seal(clear[f]) for f in fields})
            return True

        # redis-py types `transaction` as if value_from_callable did not exist (func -> None)
        return fields if self.redis.transaction(swap, self.key, value_from_callable=True) else []  # type: ignore[arg-type]

    def lock(self, seconds: float) -> Lock:
        """The refresh lock: held by one refresher at a time, for at most `seconds`."""
        return self.redis.lock(self.lock_key, timeout=seconds, sleep=0.05)
