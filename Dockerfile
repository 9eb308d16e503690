# syntax=docker/dockerfile:1
# pim-bot: a small image that runs `pim-bot serve` as a non-root user.
#   docker build -t pim-bot .
#   docker run -p 3000:3000 -e DATABASE_URL=postgresql://… pim-bot
# Needs BuildKit (`docker build` with the buildx plugin, the default since Docker 23;
# DOCKER_BUILDKIT=1 before): the second stage mounts the first stage's wheels.
# Stage 1 builds wheels for pim-bot and its pinned dependencies (constraints.txt); stage 2
# installs only those wheels, so no compiler, pip cache or source tree ends up in the image.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Dependencies first, from pyproject.toml and constraints.txt alone: a change to the code
# reuses this layer (and the install layer below) instead of downloading them all again.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip wheel --wheel-dir /deps --constraint constraints.txt --requirement requirements.txt
COPY README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY cards ./cards
COPY vocab ./vocab
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1 PORT=3000
# /data is the one directory the unprivileged user can write: the default SQLite database
# lives there (mount a volume on it), so `docker run pim-bot` works without DATABASE_URL.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin pim \
    && install -d -o pim -g pim /data
ENV DATABASE_URL=sqlite:////data/pim-bot.db
# Every wheel, pinned by constraints.txt in stage 1: nothing is downloaded here, and the
# wheels are mounted rather than copied, so they take no layer of their own.
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    pip install --no-index /deps/*.whl
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /deps /wheels/*.whl
WORKDIR /app
COPY examples ./examples
USER 10001
EXPOSE 3000
# Alive: /healthz answers (readiness, with the database, is /readyz). No curl in slim images.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
# serve brings the schema up to date (Alembic) before it answers anything.
CMD ["pim-bot", "serve"]
