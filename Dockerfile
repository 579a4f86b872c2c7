# Container image for the `scaffolder` service.
#
#   docker build -t scaffolder .
#   docker run --rm -p 7007:7007 -e DATABASE_URL=postgres://... scaffolder
#
# or `docker compose up` (see docker-compose.yml). Statically checked by
# `bash .ci/lint-containers.sh` (no Docker daemon needed).
#
# Works with both BuildKit and the legacy builder: dependencies are cached in
# a layer of their own by building the crate once with empty sources.

########################################################################
# Build stage
########################################################################
FROM rust:1-bookworm AS build

WORKDIR /src

# sqlx's compile-time query macros must never try to reach a database
# during an image build: they use the checked-in `.sqlx/` data, if any.
ENV CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true

# 1) Dependencies only. This layer is rebuilt only when Cargo.toml or
#    Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2) The real sources (.dockerignore keeps target/ and .git out). COPY keeps
#    the files' own mtimes, which may be older than the placeholder build
#    above, so the crate's own artifacts are removed to force a rebuild.
#    `mkdir -p templates`: git does not track an empty directory, so a fresh
#    clone may lack templates/; the runtime stage copies it from here.
COPY . .
RUN mkdir -p templates \
    && rm -rf target/release/.fingerprint/scaffolder-* \
           target/release/deps/scaffolder-* \
           target/release/deps/libscaffolder-* \
    && cargo build --release --locked \
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
               --shell /usr/sbin/nologin scaffolder

COPY --from=build /usr/local/bin/scaffolder /usr/local/bin/scaffolder
COPY --from=build /src/templates/ /app/templates/

WORKDIR /app

# Listen on all interfaces inside the container (the default 127.0.0.1
# would be unreachable through a published port). /app is not writable by the
# runtime user: data (the generated secrets key, local git repositories) goes
# to its home. Mount a volume there, or set secrets.keys, to keep the key.
ENV SCAFFOLDER_BIND=0.0.0.0:7007 \
    XDG_DATA_HOME=/home/scaffolder/.local/share

USER 10001:10001

EXPOSE 7007

# No HEALTHCHECK here: the image has neither curl nor wget. The compose file
# probes GET /readyz with bash's /dev/tcp instead.
ENTRYPOINT ["/usr/local/bin/scaffolder"]
CMD ["serve", "--bind", "0.0.0.0:7007", "--templates", "/app/templates"]
