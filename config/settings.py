"""The one place that reads configuration: docs/interface.md §2 plus a few tuning knobs."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlparse

from config.formats import load_public_key, parse_keys, parse_networks
from config.redis_url import masked, parse_sentinel_url
from config.sandbox import apply_sandbox_defaults, published_secret

ZALO_KEYS = ("zalo_app_id", "zalo_app_secret", "zalo_oa_secret_key")
FRESHCHAT_KEYS = ("freshchat_api_url", "freshchat_api_key", "freshchat_channel_id", "freshchat_webhook_public_key")
SECRET_FIELDS = (
    "secret_key",
    "admin_token",
    "metrics_token",
    "zalo_app_secret",
    "zalo_oa_secret_key",
    "zalo_access_token",
    "zalo_refresh_token",
    "freshchat_api_key",
    "encryption_key",
)

# A bearer token is guessed online, a few tries at a time (app/web/wrong_tokens.py); 24 random
# characters keep that hopeless even for a patient botnet.
MIN_TOKEN_LENGTH = 24
TOKEN_TOO_SHORT = (
    f"shorter than {MIN_TOKEN_LENGTH} characters; make one with: "
    'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
)


class ConfigError(Exception):
    """Raised with one line per problem so start-up can print them all at once."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    port: int = 8000
    redis_url: str = "redis://localhost:6379/0"
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 500  # how long a webhook waits for REDIS_WAIT_REPLICAS before a 503
    public_base_url: str = "http://localhost:8000"
    trusted_proxies: str = ""  # addresses/CIDRs whose X-Forwarded-For/-Proto are believed (app/web/proxies.py)
    secret_key: str = ""
    encryption_key: str = ""  # empty: derived from secret_key (app/bridge/secrets_at_rest.py)
    admin_token: str = ""
    metrics_token: str = ""
    zalo_app_id: str = ""
    zalo_app_secret: str = ""
    zalo_oa_id: str = ""
    zalo_oa_secret_key: str = ""
    zalo_access_token: str = ""
    zalo_refresh_token: str = ""
    zalo_api_base_url: str = "https://openapi.zalo.me"
    zalo_oauth_base_url: str = "https://oauth.zaloapp.com"
    zalo_business_api_base_url: str = "https://business.openapi.zalo.me"  # the template API (/template/all, ...)
    zalo_site_verification: str = ""
    freshchat_api_url: str = ""
    freshchat_api_key: str = ""
    freshchat_channel_id: str = ""
    freshchat_webhook_public_key: str = ""
    resolve_notification: bool = False
    resolve_notification_text: str = ""  # empty: the bridge's own thank-you (app/texts.py)
    # Per-connection options beyond the contract (README "Options"); env sets the default connection's.
    receipts: str = "note"  # how agents see received/read: "note" or "off"
    hold_billed_replies: bool = False  # hold a reply Zalo would bill (no Zalo Cloud Account) and tell the agent
    satisfaction_survey: bool = False  # on resolution inside the free window, ask the customer for a 1-5 rating
    agent_signature: str = ""  # e.g. "{text}\n— {agent}"; empty: replies go unsigned
    customer_language: str = "vi"  # texts the bridge writes to Zalo users
    agent_language: str = "en"  # notes the bridge writes to agents
    # One FreshChat user per person across the OAs of one app (CONTRACT §7): stored connections
    # only; no variable sets it, so the default connection keeps it off (NOT_FROM_ENV).
    merge_users_by_app: bool = False
    freshchat_group_id: str = ""  # new conversations are assigned to this FreshChat group; "": none
    media_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_public_endpoint_url: str = ""  # where users' browsers reach the bucket, when not S3_ENDPOINT_URL
    media_dir: str = "./var/media"
    media_max_bytes: int = 26214400
    media_fetch_allow_private: bool = False
    worker_concurrency: int = 4
    log_format: str = "json"
    log_level: str = "info"
    # Tuning knobs beyond the contract (documented in the README).
    sandbox: bool = False
    retry_horizon_seconds: int = 900
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    lease_seconds: int = 30
    zalo_rate_per_minute: int = 4000
    freshchat_rate_per_minute: int = 6000
    rate_window_seconds: float = 60.0
    dedupe_ttl_seconds: int = 7 * 86400
    replay_window_seconds: int = 12 * 3600
    replay_skew_seconds: int = 300  # how far in the future a signed time may be (clock drift)
    http_timeout_seconds: float = 15.0
    catchup_horizon_seconds: int = 7 * 86400  # how far back a catch-up reads Zalo's history
    catchup_quiet_seconds: int = 600  # no Zalo webhook this long on a connection that had some: catch up

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        values = [getattr(self, n) for n in SECRET_FIELDS] + [k.strip() for k in self.encryption_key.split(",")]
        values.append(_url_password(self.redis_url))  # make run's Redis password, and any other
        return [v for v in values if v and len(v) >= 4]


def _url_password(url: str) -> str:
    try:
        return urlparse(url).password or ""
    except ValueError:
        return ""


def _as_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _as_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _as_url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("expected an http(s) URL")
    return raw.rstrip("/")


def _as_redis_url(raw: str) -> str:
    scheme = urlparse(raw).scheme
    if scheme == "redis+sentinel":
        parse_sentinel_url(raw)  # its ValueError names what is wrong
    elif scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected redis://, rediss://, unix:// or redis+sentinel://")
    return raw


def _as_networks(raw: str) -> str:
    return ",".join(str(n) for n in parse_networks(raw))


def _one_of(*allowed: str):
    def cast(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}")
        return raw

    return cast


LANGUAGES = ("vi", "en")
RECEIPT_MODES = ("note", "off")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _as_log_format(raw: str) -> str:
    if raw not in ("json", "text"):
        raise ValueError("expected json or text")
    return raw


CASTS = {
    "port": _as_int,
    "worker_concurrency": _as_int,
    "media_max_bytes": _as_int,
    "retry_horizon_seconds": _as_int,
    "lease_seconds": _as_int,
    "redis_wait_replicas": _as_int,
    "redis_wait_timeout_ms": _as_int,
    "zalo_rate_per_minute": _as_int,
    "freshchat_rate_per_minute": _as_int,
    "dedupe_ttl_seconds": _as_int,
    "replay_window_seconds": _as_int,
    "replay_skew_seconds": _as_int,
    "catchup_horizon_seconds": _as_int,
    "catchup_quiet_seconds": _as_int,
    "retry_base_seconds": float,
    "retry_max_seconds": float,
    "http_timeout_seconds": float,
    "rate_window_seconds": float,
    "resolve_notification": _as_bool,
    "media_fetch_allow_private": _as_bool,
    "sandbox": _as_bool,
    "redis_url": _as_redis_url,
    "public_base_url": _as_url,
    "trusted_proxies": _as_networks,
    "zalo_api_base_url": _as_url,
    "zalo_oauth_base_url": _as_url,
    "zalo_business_api_base_url": _as_url,
    "freshchat_api_url": _as_url,
    "s3_endpoint_url": _as_url,
    "s3_public_endpoint_url": _as_url,
    "log_format": _as_log_format,
    "log_level": _one_of(*LOG_LEVELS),
    "hold_billed_replies": _as_bool,
    "satisfaction_survey": _as_bool,
    "receipts": _one_of(*RECEIPT_MODES),
    "customer_language": _one_of(*LANGUAGES),
    "agent_language": _one_of(*LANGUAGES),
}


# Per-connection options CONTRACT §2 names no variable for: the default connection keeps their
# default, whatever the environment holds.
NOT_FROM_ENV = frozenset({"merge_users_by_app"})


def _read_env(env: dict[str, str]) -> tuple[dict, list[str]]:
    values, problems = {}, []
    for f in fields(Settings):
        raw = None if f.name in NOT_FROM_ENV else env.get(f.name.upper())
        if raw is None or (raw == "" and f.name in CASTS):
            continue
        try:
            values[f.name] = CASTS.get(f.name, str)(raw)
        except ValueError as exc:
            problems.append(f"{f.name.upper()}: {exc} (got {_describe(f.name, raw)})")
    return values, problems


def _describe(name: str, raw: str) -> str:
    if name == "redis_url":
        return repr(masked(raw)[:80])
    return "a secret value" if name in SECRET_FIELDS else repr(raw[:60])


def _apply_defaults(values: dict, env: dict[str, str]) -> None:
    port = values.get("port", 8000)
    values.setdefault("public_base_url", f"http://localhost:{port}")
    if "sandbox" not in values:
        # No partner credentials at all means "show me the bridge": run against simulators.
        values["sandbox"] = not any(values.get(k) for k in ZALO_KEYS + FRESHCHAT_KEYS)
    if values["sandbox"]:
        apply_sandbox_defaults(values, env)
        if not values.get("secret_key"):
            values["secret_key"] = _sandbox_secret(values.get("media_dir", "./var/media"))


def _sandbox_secret(media_dir: str) -> str:
    """A per-checkout secret so sandbox media links survive restarts."""
    path = Path(media_dir).parent / "sandbox-secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    return value


def _check(s: Settings) -> list[str]:
    problems = []
    if not s.secret_key:
        problems.append("SECRET_KEY: required outside sandbox mode (signs media links)")
    if not s.sandbox:
        for key in ZALO_KEYS + FRESHCHAT_KEYS:
            if not getattr(s, key):
                problems.append(
                    f"{key.upper()}: required (set every Zalo and FreshChat variable, or none of them for sandbox mode)"
                )
    if not s.sandbox:
        problems += _published_secrets(s)
    if s.replay_window_seconds >= s.dedupe_ttl_seconds:
        # Inside the window only the dedupe key stops a replayed event: it must outlive the window.
        problems.append("REPLAY_WINDOW_SECONDS: must be shorter than DEDUPE_TTL_SECONDS")
    if s.worker_concurrency < 1:
        problems.append("WORKER_CONCURRENCY: must be at least 1")
    if s.freshchat_api_url and not s.freshchat_api_url.endswith("/v2"):
        # Every FreshChat call would answer 404: nothing could work, so say it before starting.
        problems.append(
            "FRESHCHAT_API_URL: must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)"
        )
    if s.freshchat_webhook_public_key and not _looks_like_key(s.freshchat_webhook_public_key):
        problems.append("FRESHCHAT_WEBHOOK_PUBLIC_KEY: not a PEM/base64 RSA public key")
    if s.encryption_key:
        problems += _encryption_key_problems(s.encryption_key)
    for name in ("admin_token", "metrics_token"):
        if 0 < len(getattr(s, name)) < MIN_TOKEN_LENGTH:
            problems.append(f"{name.upper()}: {TOKEN_TOO_SHORT}")
    return problems


def _published_secrets(s: Settings) -> list[str]:
    """The sandbox's fixed Zalo secrets are in this repository: outside sandbox mode they are
    refused, unless Zalo is this machine's simulator (docs/security.md, "Sandbox mode is not a door")."""
    return [
        f"{name.upper()}: is the sandbox's published value; set your Zalo app's own"
        for name in ("zalo_app_secret", "zalo_oa_secret_key")
        if published_secret(getattr(s, name), s.zalo_api_base_url)
    ]


def _encryption_key_problems(raw: str) -> list[str]:
    try:
        parse_keys(raw)
    except ValueError as exc:
        return [f"ENCRYPTION_KEY: {exc}"]  # the message names the item's position, never its value
    return []


def _looks_like_key(raw: str) -> bool:
    try:
        load_public_key(raw)
    except ValueError:
        return False
    return True


def load_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from the environment; raise ConfigError listing every problem."""
    env = dict(os.environ if env is None else env)
    values, problems = _read_env(env)
    values.update(overrides)
    _apply_defaults(values, env)
    settings = Settings(**values)
    problems += _check(settings)
    if problems:
        raise ConfigError(problems)
    return settings
