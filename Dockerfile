# syntax=docker/dockerfile:1
# mpc-broker and mpc-node in one small image (docker-compose.yml runs both from it).
#
#   docker build -t mpc .
#   docker run --rm mpc mpc-broker --help
#
# Builder: the workspace in release. Only what the build reads is copied: the manifests, the
# lock file and the crates' directories; `schemas/` because the broker embeds the JSON Schemas
# and the OpenAPI document at compile time (`include_str!("../../schemas/…")` in
# broker/src/schemas.rs). `../shared` is read by tests only. The cache mounts (BuildKit) keep
# the registry and target/ between builds; the binaries are copied out of target/ in the same step.
FROM rust:1.89-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY identity ./identity
COPY mpc-core ./mpc-core
COPY broker ./broker
COPY node ./node
COPY schemas ./schemas
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p broker -p node --bin mpc-broker --bin mpc-node \
    && mkdir -p /out \
    && cp target/release/mpc-broker target/release/mpc-node /out/

# Runtime: the two binaries, CA certificates (mpc-node talks to https:// brokers), curl for
# health checks, and an unprivileged user. /data belongs to that user so a named volume
# mounted there starts out writable by it (key files are created with mode 0600).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mpc \
    && useradd --system --uid 10001 --gid mpc --home-dir /data --shell /usr/sbin/nologin mpc \
    && install -d -o mpc -g mpc -m 0750 /data
COPY --from=builder /out/mpc-broker /out/mpc-node /usr/local/bin/
USER mpc
WORKDIR /data
EXPOSE 8080
CMD ["mpc-broker", "--listen", "0.0.0.0:8080", "--key", "/data/broker-key.json"]
