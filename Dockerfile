# Multi-stage build: compile in the Rust image, run in a slim Debian image as
# a non-root user. Config and zones come from volumes; serials persist in a
# volume.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/txtfailover

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10053 --home-dir /var/lib/txtfailover --shell /usr/sbin/nologin txtfailover \
 && mkdir -p /etc/txtfailover/config /etc/txtfailover/zones /var/lib/txtfailover \
 && chown txtfailover /var/lib/txtfailover
COPY --from=build /src/target/release/txtfailover /usr/local/bin/txtfailover
USER txtfailover
VOLUME ["/etc/txtfailover/config", "/etc/txtfailover/zones", "/var/lib/txtfailover"]
EXPOSE 5353/udp 5353/tcp
ENTRYPOINT ["/usr/local/bin/txtfailover"]
CMD ["serve", "--config", "/etc/txtfailover/config/txtfailover.toml"]
