"""The production proxy configs (deploy/nginx.conf, deploy/Caddyfile) run on loopback, for the
proxy check in CI (bin/proxy-check), the proxy tests and the slow-client bench.

There is one copy of each config: the file an operator installs. For a run here it is rendered
with a self-signed certificate made at run time, free loopback ports and the upstream's port;
every substitution must hit, so a config that drifts from what this module expects fails the
check instead of testing something else. nginx gets a minimal main file around it (pid, logs and
temporary files in the run's folder); Caddy gets a few global options (no admin endpoint, no
redirect port, no trust-store install) and `tls <cert> <key>` in each site.

    python -m bench.proxies [check]   # validate both, then /healthz and a signed webhook
                                      # through each to gunicorn as the Procfile starts it
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import urllib3

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.procs import free_port  # noqa: E402

HOST = "localhost"  # the name the test certificate is for; /etc/hosts gives 127.0.0.1
PROXIES = ("nginx", "caddy")


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise ValueError(f"the production config no longer contains {old!r}: update bench/proxies.py")
    return text.replace(old, new)


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for HOST, made for this run only."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}"]
        + ["-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def render_nginx(folder: Path, upstream_port: int, cert: Path, key: Path) -> tuple[Path, int]:
    """deploy/nginx.conf on loopback ports in a main file of its own; returns (main file, TLS port)."""
    tls_port, http_port = free_port(), free_port()
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text = _replace(text, "/etc/letsencrypt/live/bridge.example.com/fullchain.pem", str(cert))
    text = _replace(text, "/etc/letsencrypt/live/bridge.example.com/privkey.pem", str(key))
    text = _replace(text, "server_name bridge.example.com;", f"server_name {HOST};")
    text = _replace(text, "listen 443 ssl", f"listen 127.0.0.1:{tls_port} ssl")
    text = _replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
    text = _replace(text, "proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{upstream_port};")
    (folder / "bridge.conf").write_text(text)
    temp = folder / "nginx-temp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # its workers write the temporary files here
    main = folder / "nginx-main.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
        f"  include {folder}/bridge.conf;\n}}\n"
    )
    return main, tls_port


def render_caddy(folder: Path, cert: Path, key: Path) -> tuple[Path, int]:
    """deploy/Caddyfile with this run's certificate, on loopback; returns (Caddyfile, TLS port)."""
    tls_port = free_port()
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    own = f"\tadmin off\n\tskip_install_trust\n\tauto_https disable_redirects\n\thttp_port {free_port()}\n"
    text = _replace(text, "\n{\n", "\n{\n" + own)
    site = f"\n\tbind 127.0.0.1\n\ttls {cert} {key}\n"
    text = _replace(text, "\n{$DOMAIN} {\n", "\n{$DOMAIN} {" + site)
    text = _replace(text, "\nmedia.{$DOMAIN} {\n", "\nmedia.{$DOMAIN} {" + site)
    path = folder / "Caddyfile"
    path.write_text(text)
    return path, tls_port


def caddy_env(folder: Path, upstream_port: int, tls_port: int, **extra) -> dict:
    """The Caddyfile's variables for a loopback run; Caddy keeps its state in `folder`."""
    env = {k: v for k, v in os.environ.items() if k not in ("CADDY_REQUEST_BUFFERING",)}
    env.update(
        DOMAIN=f"{HOST}:{tls_port}",
        BRIDGE_UPSTREAM=f"127.0.0.1:{upstream_port}",
        MEDIA_UPSTREAM="127.0.0.1:9",
        HOME=str(folder),
        XDG_DATA_HOME=str(folder / "caddy-data"),
        XDG_CONFIG_HOME=str(folder / "caddy-config"),
    )
    env.update(extra)
    return env


def _run(args: list[str], env: dict | None = None) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return out.stderr + out.stdout


def validate_production_caddyfile(folder: Path) -> str:
    """`caddy validate` of deploy/Caddyfile itself, as an operator's host would load it."""
    env = {**os.environ, "DOMAIN": "bridge.example.com", "HOME": str(folder), "XDG_DATA_HOME": str(folder)}
    env.pop("CADDY_REQUEST_BUFFERING", None)
    return _run(["caddy", "validate", "--adapter", "caddyfile", "--config", str(ROOT / "deploy" / "Caddyfile")], env)


class Proxy:
    """One of the production proxies, rendered and running on loopback in front of `upstream_port`."""

    def __init__(self, kind: str, upstream_port: int, folder: Path | None = None):
        self.kind = kind
        self.folder = Path(folder or tempfile.mkdtemp(prefix=f"zfb-{kind}-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = make_cert(self.folder)
        self.env = None
        if kind == "nginx":
            self.config, self.port = render_nginx(self.folder, upstream_port, self.cert, self.key)
            self.args = ["nginx", "-p", str(self.folder), "-c", str(self.config)]
        elif kind == "caddy":
            self.config, self.port = render_caddy(self.folder, self.cert, self.key)
            self.env = caddy_env(self.folder, upstream_port, self.port)
            self.args = ["caddy", "run", "--adapter", "caddyfile", "--config", str(self.config)]
        else:
            raise ValueError(kind)
        self.url = f"https://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None

    def validate(self) -> str:
        if self.kind == "nginx":
            return _run(self.args + ["-t"])
        return _run(["caddy", "validate", "--adapter", "caddyfile", "--config", str(self.config)], self.env)

    def start(self) -> Proxy:
        log = open(self.folder / f"{self.kind}.log", "ab")
        args = self.args + (["-g", "daemon off;"] if self.kind == "nginx" else [])
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start:\n{self.log()}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            requests.get(self.url + "/", verify=str(self.cert), timeout=1)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT if self.kind == "nginx" else signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log(self) -> str:
        files = [self.folder / f"{self.kind}.log", self.folder / "nginx-error.log"]
        return "".join(p.read_text(errors="replace") for p in files if p.exists())

    def wrap(self, sock):
        """TLS for a raw client socket (the slow clients): the run's own certificate."""
        context = ssl.create_default_context(cafile=str(self.cert))
        return context.wrap_socket(sock, server_hostname=HOST)


def available() -> list[str]:
    return [kind for kind in PROXIES if shutil.which(kind)]


def check() -> int:
    """CI: both configs load, and /healthz plus a signed webhook pass through each to gunicorn
    started as the Procfile starts it, on a throw-away Redis. Nothing leaves 127.0.0.1."""
    from bench.common import start_redis, tmpdir, zalo_text_event
    from bench.slow_clients import start_web
    from sandbox.server import build_partners

    urllib3.disable_warnings()
    missing = [kind for kind in PROXIES if kind not in available()]
    if missing:
        print(f"proxy check: {', '.join(missing)} not installed (apt-get install nginx caddy)", file=sys.stderr)
        return 1
    print("caddy validate deploy/Caddyfile:", validate_production_caddyfile(Path(tempfile.mkdtemp())).splitlines()[-1])
    print("nginx -v:", _run(["nginx", "-v"]).strip(), "| caddy version:", _run(["caddy", "version"]).strip())
    redis = start_redis()
    tmp = tmpdir("proxy-check")
    web = start_web(tmp, redis.url, TRUSTED_PROXIES="127.0.0.1")
    _, zalo, _ = build_partners()
    failed = 0
    try:
        for kind in PROXIES:
            proxy = Proxy(kind, web.port, tmp / kind)
            try:
                print(f"{kind} validate:", proxy.validate().strip().splitlines()[-1])
                proxy.start()
                session, tls = requests.Session(), {"verify": str(proxy.cert), "timeout": 10}
                health = session.get(proxy.url + "/healthz", **tls)
                raw, headers = zalo.sign(zalo_text_event("880000000000000001", "via proxy", uuid.uuid4().hex[:20]))
                hook = session.post(proxy.url + "/webhooks/zalo", data=raw, headers=headers, **tls)
                ok = health.status_code == 200 and health.json() == {"ok": True} and hook.status_code == 200
                print(f"{kind} {proxy.url}: /healthz {health.status_code}, signed webhook {hook.status_code}")
                failed += not ok
            except Exception as exc:  # one proxy's failure is reported, the other still checked
                print(f"{kind} FAILED: {exc}", file=sys.stderr)
                failed += 1
            finally:
                proxy.stop()
    finally:
        web.stop()
        redis.stop()
    print("PROXY CHECK OK" if not failed else "PROXY CHECK FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(check())
