"""`python -m sandbox --port 9100`: run the Zalo and FreshChat simulators for the sandbox.

The FreshChat signing key is the one config/sandbox.py gives the bridge (made once per
checkout under the media directory's parent, `./var` by default), so webhooks verify.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from config.sandbox import sandbox_keypair
from sandbox.connections import (
    SECOND_PREFIX,
    SPARE_PREFIX,
    add_merging,
    add_second_oa,
    add_spare_oa,
    second_freshchat,
    spare_freshchat,
)
from sandbox.server import build_partners, serve, set_public_url


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--public-url", default="", help="how the bridge reaches this server (default http://<host>:<port>)"
    )
    parser.add_argument(
        "--var-dir",
        default=str(Path(os.environ.get("MEDIA_DIR", "./var/media")).parent),
        help="where the shared FreshChat key lives (same rule as the bridge)",
    )
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    parser.add_argument("--reopen-mode", choices=("classic", "new_conversation"), default="classic")
    return parser.parse_args(argv)


def _configure_logging() -> None:
    """The bridge's log format (LOG_FORMAT), so `make run` prints one format."""
    from app.logs import configure_logging
    from config import ConfigError, Settings, load_settings

    try:
        settings = load_settings(sandbox=True)
    except ConfigError:
        settings = Settings(sandbox=True)  # bin/run has printed the problems already
    configure_logging(settings)


def main(argv=None) -> None:
    args = parse_args(argv)
    private_pem, _ = sandbox_keypair(Path(args.var_dir))
    # the second connection's OA and FreshChat account, and the spare ones (sandbox/connections.py)
    var = Path(args.var_dir)
    accounts = {SECOND_PREFIX: second_freshchat(var), SPARE_PREFIX: spare_freshchat(var)}
    settings = {"freshchat_private_key": private_pem, "reopen_mode": args.reopen_mode}
    app, zalo, fc = build_partners(settings, accounts)
    add_second_oa(zalo)
    add_spare_oa(zalo)
    add_merging(zalo, fc)
    server = serve(app, args.host, args.port, quiet=args.quiet)
    public = args.public_url or f"http://{args.host}:{server.port}"
    set_public_url(public, zalo, fc, accounts)
    _configure_logging()
    logging.getLogger("sandbox").info(
        "sandbox.partners_started",
        extra={
            "url": public,
            "zalo": f"{zalo.base_url} (OAs {', '.join(zalo.oas())})",
            "freshchat": ", ".join(f"{account.base_url}/v2" for account in (fc, *accounts.values())),
            "state": f"{zalo.base_url}/_sim/state, {fc.base_url}/_sim/state",
        },
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
