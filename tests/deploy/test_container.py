"""The container files, checked where no image can be built: this machine (and CI) cannot pull
base images, so the Dockerfile and docker-compose.yml are read, and their moving parts run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile() -> list[tuple[str, str]]:
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_image_installs_with_the_makefile_and_runs_as_a_user():
    steps = _dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("RUN", "make runtime VENV=/opt/venv PYTHON=python3") in steps
    users = [arg for op, arg in steps if op == "USER"]
    assert users == ["bridge"]
    assert ("ENTRYPOINT", '["bin/container"]') in steps and ("CMD", '["web"]') in steps


def test_everything_the_image_copies_exists_and_the_app_needs_nothing_else():
    copied = [arg.split()[0] for op, arg in _dockerfile() if op == "COPY"]
    for source in copied:
        assert (ROOT / source).exists(), source
    # The image leaves out tests, bench and the sandbox: production code must not import them.
    for folder in ("app", "config", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(from|import) (tests|bench)\b", text, re.M), path
            if re.search(r"^\s*from sandbox", text, re.M):
                assert path == ROOT / "app" / "web" / "__init__.py", path  # the one lazy import


def test_make_runtime_installs_only_the_runtime_requirements():
    out = subprocess.run(["make", "-n", "runtime", "VENV=/opt/venv"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pip install -q --no-cache-dir -r requirements.txt" in out.stdout
    assert "requirements-dev" not in out.stdout


def test_the_entry_point_runs_the_procfile_lines(tmp_path):
    # A copy of bin/container beside a Procfile of harmless commands shows which line each name runs.
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "container"
    script.write_text((ROOT / "bin" / "container").read_text())
    script.chmod(0o755)
    (tmp_path / "Procfile").write_text("web: echo web on ${PORT:-8000}\nworker: echo worker\n")

    def run(*args):
        return subprocess.run([str(script), *args], capture_output=True, text=True, env={**os.environ, "PORT": "9001"})

    assert run("web").stdout == "web on 9001\n"
    assert run("worker").stdout == "worker\n"
    assert run("echo", "flask").stdout == "flask\n"
    procfile = (ROOT / "Procfile").read_text()
    assert re.search(r"^web: gunicorn ", procfile, re.M) and re.search(r"^worker: python -m workers$", procfile, re.M)


def test_compose_runs_one_image_as_web_and_worker_on_durable_redis():
    services = _compose()["services"]
    assert services["web"]["command"] == ["web"] and services["worker"]["command"] == ["worker"]
    assert services["web"]["image"] == services["worker"]["image"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    env = services["web"]["environment"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000" and env["MEDIA_BUCKET"]
    assert "web" not in [p.split(":")[0] for p in services["web"].get("ports", [])]  # only Caddy is public
    assert services["caddy"]["ports"] == ["80:80", "443:443"]


def test_compose_mounts_files_that_exist_and_names_its_variables():
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source != "./backups":  # made by the first backup
                assert (ROOT / source).exists(), (name, source)
    example = (ROOT / "deploy" / "env.example").read_text()
    needed = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert needed and all(re.search(rf"^{n}=", example, re.M) for n in needed), needed
    assert (ROOT / ".dockerignore").read_text().count(".env") >= 1


def test_every_compose_image_is_pinned_to_a_release():
    services = _compose()["services"]
    images = {name: s["image"] for name, s in services.items() if "image" in s and "build" not in s}
    assert {"redis", "minio", "minio-setup", "media-backup", "caddy"} <= set(images)
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest" and "." in tag, (name, image)  # `caddy:2` would move too


def test_the_worker_checks_its_own_heartbeat_not_the_web_port():
    services = _compose()["services"]
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "workers.health"]
    assert "healthcheck" not in services["web"]  # the image's: GET /healthz on $PORT
    assert ("COPY", "workers workers") in _dockerfile()


def test_only_caddy_is_a_trusted_proxy_and_it_buffers_bodies_the_way_its_version_names_it():
    compose = _compose()
    services = compose["services"]
    caddy_address = services["caddy"]["networks"]["default"]["ipv4_address"]
    assert services["web"]["environment"]["TRUSTED_PROXIES"] == caddy_address == "${CADDY_ADDRESS:-172.31.240.10}"
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert subnet == "${BRIDGE_SUBNET:-172.31.240.0/24}"
    image_version = services["caddy"]["image"].split(":")[1]
    assert tuple(int(p) for p in image_version.split(".")[:2]) >= (2, 7)
    assert services["caddy"]["environment"]["CADDY_REQUEST_BUFFERING"] == "request_buffers 2MB"
    assert "{$CADDY_REQUEST_BUFFERING:buffer_requests}" in (ROOT / "deploy" / "Caddyfile").read_text()


def test_the_bucket_is_backed_up_inside_the_compose_network():
    services = _compose()["services"]
    backup, restore = services["media-backup"], services["media-restore"]
    assert backup["profiles"] == restore["profiles"] == ["backup"]  # not started by `up`
    assert 'mc mirror --overwrite "local/$$MEDIA_BUCKET" /backups/media' in backup["command"][0]
    assert 'mc mirror --overwrite /backups/media "local/$$MEDIA_BUCKET"' in restore["command"][0]
    assert "http://minio:9000" in backup["command"][0] and backup["volumes"] == ["./backups:/backups"]


def test_the_env_example_has_no_comment_docker_would_read_as_a_value():
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if not line.startswith("#") and "=" in line:
            assert "#" not in line.split("=", 1)[1], line
