# linkmeter container: a multi-stage build to a small non-root runtime image.
#   docker build -t linkmeter .
#   docker run --rm -e LINKMETER_CONFIG_TOML="$(cat linkmeter.toml)" linkmeter run
# The image has the distributed engine: `linkmeter ballista scheduler|executor` (deploy/ballista/).
# Configuration comes from LINKMETER_* variables (LINKMETER_CONFIG_TOML holds the whole file;
# inventory and prices may be s3:// URIs), AWS credentials from the ECS task role.

FROM rust:1.95-bookworm AS build
# librdkafka is compiled with TLS against the system OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --features ballista --bin linkmeter \
 && strip target/release/linkmeter

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/linkmeter linkmeter
COPY --from=build /src/target/release/linkmeter /usr/local/bin/linkmeter
USER 10001:10001
WORKDIR /var/lib/linkmeter
# JSON logs on stderr (not a terminal), results on stdout; SIGTERM stops between inputs.
ENTRYPOINT ["linkmeter"]
CMD ["run"]
