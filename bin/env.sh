# The environment `make run` gives every process, and `bin/bridge` its commands: sourced by
# both (never run), so a command beside `make run` reads the same .env, var directory and Redis.
#
# Sets: `var` (the var directory), `env_read` (the .env file read, or empty), `local_redis`
# (1 when REDIS_URL was unset: make run's own Redis on REDIS_PORT, with the password kept in
# $var/redis-password).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# A plain shell has no `make` PATH: the checkout's virtualenv, when `python` is not one already.
if ! python -c 'import flask, honcho' 2>/dev/null && [ -x .venv/bin/python ]; then PATH="$PWD/.venv/bin:$PATH"; fi

# `.env` (or ENV_FILE) is read here, once, before anything is decided: a variable set in the
# shell wins over the file. honcho is told to read no file of its own (-e /dev/null), so the
# banner, the sandbox decision and every process see one and the same environment.
env_file="${ENV_FILE:-.env}"
env_read=""
if [ -f "$env_file" ]; then
  exports=$(python - "$env_file" <<'PY'
import os, shlex, sys
from honcho.environ import parse  # the parser honcho itself used for .env
with open(sys.argv[1]) as f:
    for name, value in parse(f.read()).items():
        if name not in os.environ:
            print(f"export {name}={shlex.quote(value)}")
PY
)
  eval "$exports"
  env_read="$env_file"
fi

var="${VAR_DIR:-./var}"
# honcho hands every process its own PORT (5000, 5100, ...); each line pins ours instead.
export PORT="${PORT:-8000}"
export MEDIA_DIR="${MEDIA_DIR:-$var/media}"
# One format on the terminal: honcho's time and process name, then the bridge's text lines.
export LOG_FORMAT="${LOG_FORMAT:-text}"
mkdir -p "$var"

# make run's Redis listens on 127.0.0.1 only and asks for a password made once, readable by
# this user only: another local user cannot queue work for the worker (docs/security.md,
# "The local Redis of `make run`"). The password travels in REDIS_URL's environment, never
# on a command line, and is masked in log lines like every other secret.
local_redis=""
if [ -z "${REDIS_URL:-}" ]; then
  local_redis=1
  redis_port="${REDIS_PORT:-6379}"
  redis_password_file="$var/redis-password"
  if [ ! -s "$redis_password_file" ]; then
    (umask 077 && python -c 'import secrets; print(secrets.token_hex(32))' > "$redis_password_file.tmp" \
      && mv "$redis_password_file.tmp" "$redis_password_file")
  fi
  chmod 600 "$redis_password_file"
  export REDIS_URL="redis://:$(cat "$redis_password_file")@127.0.0.1:$redis_port/0"
fi
