"""Configuration: defaults, sandbox, and one line per problem naming the variable."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from sandbox.helpers import FC_PUBLIC_PEM

FULL = {
    "SECRET_KEY": "s" * 32,
    "ZALO_APP_ID": "1",
    "ZALO_APP_SECRET": "a-secret",
    "ZALO_OA_SECRET_KEY": "oa-secret",
    "FRESHCHAT_API_URL": "https://acme.freshchat.com/v2",
    "FRESHCHAT_API_KEY": "k" * 20,
    "FRESHCHAT_CHANNEL_ID": "c",
    "FRESHCHAT_WEBHOOK_PUBLIC_KEY": FC_PUBLIC_PEM,
}


def test_contract_defaults(tmp_path):
    s = load_settings({**FULL, "MEDIA_DIR": str(tmp_path / "m")})
    assert (s.port, s.redis_url, s.public_base_url) == (8000, "redis://localhost:6379/0", "http://localhost:8000")
    assert (s.resolve_notification, s.media_max_bytes, s.worker_concurrency, s.log_format) == (
        False,
        26214400,
        4,
        "json",
    )
    assert s.zalo_api_base_url == "https://openapi.zalo.me" and s.zalo_oauth_base_url == "https://oauth.zaloapp.com"
    assert not s.sandbox and not s.media_fetch_allow_private


def test_public_base_url_follows_port():
    assert load_settings({**FULL, "PORT": "9000"}).public_base_url == "http://localhost:9000"


def test_every_problem_is_reported_on_its_own_line():
    env = {
        "ZALO_APP_ID": "1",
        "PORT": "eighty",
        "RESOLVE_NOTIFICATION": "maybe",
        "LOG_FORMAT": "xml",
        "FRESHCHAT_API_URL": "ftp://x",
        "ZALO_APP_SECRET": "top-secret-value",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    text = str(info.value)
    for name in (
        "PORT",
        "RESOLVE_NOTIFICATION",
        "LOG_FORMAT",
        "FRESHCHAT_API_URL",
        "SECRET_KEY",
        "ZALO_OA_SECRET_KEY",
        "FRESHCHAT_API_KEY",
        "FRESHCHAT_CHANNEL_ID",
    ):
        assert any(line.startswith(name + ":") for line in info.value.problems), name
    assert "top-secret-value" not in text


def test_bad_public_key_is_reported():
    with pytest.raises(ConfigError) as info:
        load_settings(
            {**FULL, "FRESHCHAT_WEBHOOK_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"}
        )
    assert info.value.problems[0].startswith("FRESHCHAT_WEBHOOK_PUBLIC_KEY:")


def test_no_credentials_means_sandbox_against_the_simulators(tmp_path):
    s = load_settings({"MEDIA_DIR": str(tmp_path / "var" / "media")})
    assert s.sandbox and s.secret_key and s.media_fetch_allow_private
    assert s.zalo_api_base_url == "http://127.0.0.1:9100/zalo"
    assert s.freshchat_api_url == "http://127.0.0.1:9100/freshchat/v2"
    assert "BEGIN PUBLIC KEY" in s.freshchat_webhook_public_key
    assert load_settings({"MEDIA_DIR": str(tmp_path / "var" / "media")}).secret_key == s.secret_key


def test_secrets_are_listed_for_masking():
    s = load_settings(FULL)
    assert {"a-secret", "oa-secret", "k" * 20, "s" * 32} <= set(s.secrets())


def test_sentinel_urls_are_parsed_and_their_password_never_printed():
    from config.redis_url import parse_sentinel_url

    target = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380/bridge/2")
    assert target.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert (target.master, target.db, target.password) == ("bridge", 2, "s@cret")
    assert parse_sentinel_url("redis+sentinel://h:1/bridge").db == 0
    with pytest.raises(ConfigError) as caught:
        load_settings({"SANDBOX": "true", "REDIS_URL": "redis+sentinel://:hunter22@h1:26379,h2/bridge/0"})
    assert caught.value.problems == [
        "REDIS_URL: sentinel address 'h2' is not host:port (got 'redis+sentinel://:***@h1:26379,h2/bridge/0')"
    ]


def test_a_plain_redis_url_error_masks_its_password_too():
    with pytest.raises(ConfigError) as caught:
        load_settings({"SANDBOX": "true", "REDIS_URL": "http://user:hunter22@h:6379/0"})
    assert "hunter22" not in str(caught.value) and "http://user:***@h:6379/0" in str(caught.value)


HOW_TO = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "METRICS_TOKEN"])
def test_a_token_shorter_than_24_characters_stops_start_up_saying_how_to_make_one(name):
    with pytest.raises(ConfigError) as info:
        load_settings({**FULL, name: "short-but-secret-value"})  # 22 characters
    assert info.value.problems == [f"{name}: shorter than 24 characters; {HOW_TO}"]
    assert "short-but-secret-value" not in str(info.value)
    assert getattr(load_settings({**FULL, name: "x" * 24}), name.lower()) == "x" * 24


def test_the_how_to_line_makes_a_token_long_enough():
    import subprocess
    import sys

    command = HOW_TO.split('"', 1)[1].rstrip('"')
    made = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True).stdout.strip()
    assert len(made) >= 24 and load_settings({**FULL, "ADMIN_TOKEN": made}).admin_token == made


def test_trusted_proxies_are_addresses_or_cidrs():
    s = load_settings({**FULL, "TRUSTED_PROXIES": " 127.0.0.1, 172.16.0.0/12,::1 ,10.1.2.3/8"})
    assert s.trusted_proxies == "127.0.0.1/32,172.16.0.0/12,::1/128,10.0.0.0/8"
    assert load_settings(FULL).trusted_proxies == ""
    with pytest.raises(ConfigError) as info:
        load_settings({**FULL, "TRUSTED_PROXIES": "127.0.0.1,caddy"})
    assert info.value.problems == [
        "TRUSTED_PROXIES: 'caddy' is not an IP address or CIDR (e.g. 127.0.0.1 or 172.16.0.0/12)"
        " (got '127.0.0.1,caddy')"
    ]


def test_the_redis_password_is_masked_in_log_lines():
    """make run's REDIS_URL carries its generated password: no log line may show it."""
    import io
    import logging

    from app.logs import log_handler
    from sandbox.helpers import make_settings

    password = "0f" * 32
    settings = make_settings(f"redis://:{password}@127.0.0.1:6379/0")
    assert password in settings.secrets()
    out = io.StringIO()
    log = logging.getLogger("test.redis_password")
    log.addHandler(log_handler(settings, out))
    log.warning("connecting to %s", settings.redis_url)
    assert out.getvalue().endswith("connecting to redis://:***@127.0.0.1:6379/0\n")


def test_log_level_sets_the_root_loggers_level_and_refuses_a_word_it_does_not_know(capsys):
    import logging

    from app.logs import configure_logging

    assert load_settings(FULL).log_level == "info"
    configure_logging(load_settings({**FULL, "LOG_LEVEL": "debug", "LOG_FORMAT": "text"}))
    logging.getLogger("webhooks").debug("webhook.accepted")
    assert "webhook.accepted" in capsys.readouterr().err
    configure_logging(load_settings({**FULL, "LOG_FORMAT": "text"}))
    logging.getLogger("webhooks").debug("webhook.accepted")
    assert "webhook.accepted" not in capsys.readouterr().err
    with pytest.raises(ConfigError) as refused:
        load_settings({**FULL, "LOG_LEVEL": "verbose"})
    assert "LOG_LEVEL" in str(refused.value)
