# Container image for the `scaffolder` service.
#
#   docker build -t scaffolder .
#   docker run --rm -p 7007:7007 \
#     -e DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/scaffolder \
#     -e SCAFFOLDER__AUTH__ALLOW_ANONYMOUS=true \
#     -v scaffolder-data:/home/scaffolder/.local/share scaffolder
#
# The server binds 0.0.0.0 in the container and refuses to start on a
# non-loopback address without an auth mode: the run above accepts anonymous
# callers (local use: they must send a loopback Host, http://localhost:7007);
# behind a Backstage set SCAFFOLDER__AUTH__BACKSTAGE__BASE_URL instead (README,
# "Authentication and ownership"). The volume keeps the generated key that
# seals task secrets and the local git host's repositories.
#
# Or `docker compose up` (see docker-compose.yml). Checked statically by
# `bash .ci/lint-containers.sh`, and built and run with podman by
# `bash scripts/container-check.sh` (both in .ci/run).
#
# Needs BuildKit (Docker's default builder since 23.0; podman/buildah support
# it too): the cargo registry and the target directory are cache mounts, so a
# rebuild after a source change recompiles only this crate, and the build needs
# no stub sources for the many targets Cargo.toml declares.

########################################################################
# Build stage
########################################################################
FROM rust:1-bookworm AS build

WORKDIR /src

# sqlx's compile-time query macros must never try to reach a database
# during an image build: they use the checked-in `.sqlx/` data, if any.
ENV CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true

# Cargo features of the release build: `otlp` is the OpenTelemetry span
# exporter (README, "Traces"). .ci/run's release build uses the same
# features, since scripts/container-check.sh reuses that build's artifacts.
ARG CARGO_FEATURES="--features otlp"

# `mkdir -p templates`: git does not track an empty directory, so a fresh
# clone may lack templates/; the runtime stage copies it from here. The
# binary is copied out of the cache-mounted target directory, which is not
# part of the image.
COPY . .
# hadolint ignore=SC2086
RUN --mount=type=cache,id=scaffolder-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=scaffolder-target,target=/src/target,sharing=locked \
    mkdir -p templates \
    && cargo build --release --locked --bin scaffolder $CARGO_FEATURES \
    && install -m 0755 target/release/scaffolder /usr/local/bin/scaffolder

########################################################################
# Runtime stage
########################################################################
FROM debian:bookworm-slim AS runtime

# git: templates are fetched and results published with a `git` child
# process; ca-certificates: for HTTPS remotes. Nothing else (bash, used by
# the compose healthcheck, is part of the base image).
# Versions are not pinned: bookworm's security updates should be picked up.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 scaffolder \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/scaffolder \
               --shell /usr/sbin/nologin scaffolder \
    && install -d -o 10001 -g 10001 -m 0700 /home/scaffolder/.local /home/scaffolder/.local/share

COPY --from=build /usr/local/bin/scaffolder /usr/local/bin/scaffolder
COPY --from=build /src/templates/ /app/templates/

WORKDIR /app

# Listen on all interfaces inside the container (the default 127.0.0.1
# would be unreachable through a published port). /app is not writable by the
# runtime user: data (the generated secrets key, local git repositories) goes
# to $XDG_DATA_HOME/scaffolder. Mount a volume on /home/scaffolder/.local/share
# (created here owned by the runtime user, so a new named volume is too), or
# set secrets.keys, to keep the key.
ENV SCAFFOLDER_BIND=0.0.0.0:7007 \
    XDG_DATA_HOME=/home/scaffolder/.local/share

USER 10001:10001

EXPOSE 7007

# No HEALTHCHECK here: the image has neither curl nor wget. The compose file
# probes GET /readyz with bash's /dev/tcp instead.
ENTRYPOINT ["/usr/local/bin/scaffolder"]
CMD ["serve", "--bind", "0.0.0.0:7007", "--templates", "/app/templates"]
