# Multi-stage build of umbra's image from source (needs a registry for the build stage).
# Where no image can be pulled, scripts/docker-image.sh builds the same runtime image from a
# binary built on the host, with docker/Dockerfile.runtime.
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# musl: a fully static binary. Name resolution never goes through libc (umbra resolves
# upstream names with hickory, reading /etc/resolv.conf and /etc/hosts itself).
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p umbra \
 && mkdir -p /out/rootfs/etc/umbra /out/data \
 && cp target/x86_64-unknown-linux-musl/release/umbra /out/rootfs/umbra \
 && cp docker/umbra.toml /out/rootfs/etc/umbra/umbra.toml \
 && mkdir -p /out/rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ \
 && echo 'umbra:x:65532:65532:umbra:/data:/umbra' > /out/rootfs/etc/passwd \
 && echo 'umbra:x:65532:' > /out/rootfs/etc/group

FROM scratch
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=65532:65532 /out/data/ /data/
USER 65532:65532
WORKDIR /data
ENV UMBRA_CONFIG=/etc/umbra/umbra.toml
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/umbra", "healthcheck"]
ENTRYPOINT ["/umbra"]
CMD ["run"]
