# The e4k image: `e4k bridge run` in a cluster (see `e4k k8s manifests`).
#   docker build -t e4k:0.1.0 .
# Stage 1 builds a release binary; stage 2 is a distroless image with glibc and nothing else,
# running as the unprivileged user 65532 (the manifests' runAsUser).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p e4k \
 && install -D -m 0755 target/release/e4k /out/e4k

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/e4k /usr/local/bin/e4k
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/e4k"]
CMD ["bridge", "run", "--config", "/etc/e4k/bridge.yaml"]
