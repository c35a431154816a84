# Multi-stage build: compile in the Rust image, run as a non-root user (uid
# 10053). Config and zones come from volumes; serials persist in a volume.
#
#   docker build -t txtfailover .                    # Debian slim runtime (default)
#   docker build -t txtfailover:minimal --target minimal .
#
# The minimal target holds only the binary, the shared libraries it links
# (glibc, libgcc_s), a CA bundle and passwd/group lines: no shell, no package
# manager. Use the default image to run `command` checks, which need their
# programs inside the container.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# /rootfs gathers what the runtime stages take: the stripped binary and, for
# the minimal image, the libraries it links (ldd names them by this
# architecture's paths; -L copies the files behind symlinks such as /lib64),
# the CA bundle and passwd/group lines. target/ is removed in the same step:
# nothing needs it after, and it would make this stage gigabytes large.
RUN cargo build --release --locked \
 && mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/etc/txtfailover/config \
        /rootfs/etc/txtfailover/zones /rootfs/var/lib /state/txtfailover \
 && install -s target/release/txtfailover /rootfs/usr/local/bin/ \
 && rm -rf target \
 && cp -L --parents $(ldd /rootfs/usr/local/bin/txtfailover | grep -o '/[^ ]*') /rootfs/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/nonexistent\ntxtfailover:x:10053:10053::/var/lib/txtfailover:/nonexistent\n' \
        > /rootfs/etc/passwd \
 && printf 'root:x:0:\ntxtfailover:x:10053:\n' > /rootfs/etc/group

FROM scratch AS minimal
COPY --from=build /rootfs/ /
# Copied into the existing /var/lib, so only the state directory gets the owner.
COPY --from=build --chown=10053:10053 /state/ /var/lib/
# No shell to find it otherwise: `docker exec NAME txtfailover status` works.
ENV PATH=/usr/local/bin
USER 10053:10053
VOLUME ["/etc/txtfailover/config", "/etc/txtfailover/zones", "/var/lib/txtfailover"]
EXPOSE 5353/udp 5353/tcp
ENTRYPOINT ["/usr/local/bin/txtfailover"]
CMD ["serve", "--config", "/etc/txtfailover/config/txtfailover.toml"]

# The default image (last stage): Debian slim, for a shell and `command` checks.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10053 txtfailover \
 && useradd --uid 10053 --gid 10053 --no-create-home --home-dir /var/lib/txtfailover \
        --shell /usr/sbin/nologin txtfailover \
 && mkdir -p /etc/txtfailover/config /etc/txtfailover/zones /var/lib/txtfailover \
 && chown txtfailover:txtfailover /var/lib/txtfailover
COPY --from=build /rootfs/usr/local/bin/txtfailover /usr/local/bin/txtfailover
# Numeric, so that a runtime can tell it is not root (Kubernetes runAsNonRoot).
USER 10053:10053
VOLUME ["/etc/txtfailover/config", "/etc/txtfailover/zones", "/var/lib/txtfailover"]
EXPOSE 5353/udp 5353/tcp
ENTRYPOINT ["/usr/local/bin/txtfailover"]
CMD ["serve", "--config", "/etc/txtfailover/config/txtfailover.toml"]
