"""The bridge's Lua scripts: one `.lua` file each in app/bridge/lua/, called with named arguments.

Each file declares its inputs by name in its first lines:

    -- KEYS: lease lane due
    -- ARGV: token raw lease_ms

and a call site passes exactly those names: `POP(redis, lease=..., lane=..., due=..., token=...)`.
A missing or unknown name is a TypeError at the call, not a silently shifted KEYS[3]. Loading
checks that the highest KEYS[n] and ARGV[n] the code uses are the numbers of names declared,
so a name added or dropped without renumbering fails at import, not in production.

Shared Lua: a line `-- INCLUDE: part` is replaced by the code of part.lua. The including file
still declares its whole signature, and the part's declared names must be its first ones, in
the same order: every header reads as the complete call, and a part whose inputs change
fails loudly in each script that includes it.
"""

from __future__ import annotations

import re
from pathlib import Path

LUA_DIR = Path(__file__).with_name("lua")
_DECLARED = re.compile(r"^--\s*(KEYS|ARGV):(.*)$", re.M)
_INCLUDE = re.compile(r"^--\s*INCLUDE:\s*(\w+)\s*$", re.M)
_COMMENT = re.compile(r"--[^\n]*")


class LuaScript:
    def __init__(self, name: str, directory: Path = LUA_DIR):
        self.name = name
        own = (directory / f"{name}.lua").read_text()
        declared = {kind: names.split() for kind, names in _DECLARED.findall(own)}
        self.key_names: list[str] = declared.get("KEYS", [])
        self.arg_names: list[str] = declared.get("ARGV", [])
        self.source = _INCLUDE.sub(lambda m: self._include(m.group(1), directory), own)
        self._check_indexes()
        self._script = None  # redis-py's Script: its SHA is the same on every client
        # In a pipeline the script goes as EVAL with its code: redis-py would otherwise ask
        # SCRIPT EXISTS before every such pipeline (a round trip), and an EVALSHA of a script
        # a restarted Redis forgot would fail inside it with nothing to load it again.
        self.body = "\n".join(line for line in self.source.splitlines() if not line.lstrip().startswith("--"))

    def _include(self, part_name: str, directory: Path) -> str:
        part = LuaScript(part_name, directory)
        for kind, mine, theirs in (("KEYS", self.key_names, part.key_names), ("ARGV", self.arg_names, part.arg_names)):
            if mine[: len(theirs)] != theirs:
                raise ValueError(
                    f"{self.name}.lua includes {part_name}.lua: its {kind} must start with "
                    f"{' '.join(theirs) or '(none)'}, not {' '.join(mine) or '(none)'}"
                )
        return part.source

    def _check_indexes(self) -> None:
        names = self.key_names + self.arg_names
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}.lua declares a name twice: {' '.join(names)}")
        code = _COMMENT.sub("", self.source)
        for kind, names in (("KEYS", self.key_names), ("ARGV", self.arg_names)):
            used = max((int(n) for n in re.findall(kind + r"\[(\d+)\]", code)), default=0)
            if used != len(names):
                raise ValueError(
                    f"{self.name}.lua declares {len(names)} {kind} ({' '.join(names)}) "
                    f"but its code uses up to {kind}[{used}]"
                )

    def __call__(self, redis, client=None, **named):
        """Run on `redis` (or inside `client`, a pipeline of it) with the declared names."""
        expected = set(self.key_names) | set(self.arg_names)
        if set(named) != expected:
            raise TypeError(
                f"{self.name}.lua takes {sorted(expected)}; missing "
                f"{sorted(expected - set(named))}, unknown {sorted(set(named) - expected)}"
            )
        keys, args = [named[k] for k in self.key_names], [named[a] for a in self.arg_names]
        if client is not None and client is not redis:
            return client.eval(self.body, len(keys), *keys, *args)
        if self._script is None:
            self._script = redis.register_script(self.source)
        return self._script(keys=keys, args=args, client=redis)
