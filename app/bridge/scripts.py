"""The bridge's Lua scripts: one `.lua` file each in app/bridge/lua/, called with named arguments.

Each file declares its inputs by name in its first lines:

    -- KEYS: lease lane due
    -- ARGV: token raw lease_ms

and a call site passes exactly those names: `POP(redis, lease=..., lane=..., due=..., token=...)`.
A missing or unknown name is a TypeError at the call, not a silently shifted KEYS[3].
"""

from __future__ import annotations

import re
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")
_DECLARED = re.compile(r"^--\s*(KEYS|ARGV):(.*)$", re.M)


class LuaScript:
    def __init__(self, name: str):
        self.name = name
        self.source = (LUA_DIR / f"{name}.lua").read_text()
        declared = {kind: names.split() for kind, names in _DECLARED.findall(self.source)}
        self.key_names: list[str] = declared.get("KEYS", [])
        self.arg_names: list[str] = declared.get("ARGV", [])
        self._script = None  # redis-py's Script: its SHA is the same on every client

    def __call__(self, redis, client=None, **named):
        """Run on `redis` (or inside `client`, a pipeline of it) with the declared names."""
        expected = set(self.key_names) | set(self.arg_names)
        if set(named) != expected:
            raise TypeError(f"{self.name}.lua takes {sorted(expected)}; missing "
                            f"{sorted(expected - set(named))}, unknown {sorted(set(named) - expected)}")
        if self._script is None:
            self._script = redis.register_script(self.source)
        return self._script(keys=[named[k] for k in self.key_names], args=[named[a] for a in self.arg_names],
                            client=client or redis)
