# SleepSync server node (also the pod simulator and the terminal client: the
# entrypoint is the `sleepsync` command). Configured by SLEEPSYNC_* env vars,
# one per `sleepsync serve` flag (see "Running distributed" and "Configuration" in README.md).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY protocol ./protocol
COPY server ./server
COPY client ./client
COPY sleepsync ./sleepsync
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --create-home --shell /usr/sbin/nologin sleepsync
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER sleepsync
WORKDIR /home/sleepsync
ENV SLEEPSYNC_HOST=0.0.0.0 \
    SLEEPSYNC_PORT=8765 \
    PYTHONUNBUFFERED=1
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SLEEPSYNC_PORT', '8765'), timeout=2)"]
ENTRYPOINT ["sleepsync"]
CMD ["serve"]
