# Hadir: `hadir serve` as a non-root user. Set DATABASE_URL and REDIS_URL for a campus
# deployment; without them the embedded PostgreSQL and Redis keep their data in /data.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 hadir && mkdir /data && chown hadir /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH HADIR_HOME=/app HADIR_DATA_DIR=/data PYTHONUNBUFFERED=1
USER hadir
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["hadir", "serve", "--host", "0.0.0.0", "--port", "8000"]
