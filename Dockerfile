# One image for web and worker: `docker run IMAGE web` / `docker run IMAGE worker`.
# The install step is the Makefile's (`make runtime`), so the image gets exactly the pinned
# runtime libraries that CI tests.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    FLASK_APP=app \
    PORT=8000 \
    SANDBOX=false

RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/bridge
COPY Makefile requirements.txt ./
RUN make runtime VENV=/opt/venv PYTHON=python3

COPY Procfile ./
COPY bin/container bin/container
COPY app app
COPY config config
COPY workers workers

# No root at run time; the only writable place is the local media folder (unused with a bucket).
RUN useradd --system --uid 10001 --home-dir /srv/bridge bridge \
 && mkdir -p /srv/bridge/var/media && chown -R bridge /srv/bridge/var
USER bridge

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"
ENTRYPOINT ["bin/container"]
CMD ["web"]
