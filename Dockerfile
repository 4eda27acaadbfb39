# The ringws container image: built with the Rust toolchain in one stage, run from a small
# distroless image (glibc and libgcc, no shell, no package manager) as a non-root user.
#
#   docker build -t ringws:0.1.0 .
#   docker run --rm -p 9001:9001 -p 9090:9090 \
#       --security-opt seccomp=deploy/container/seccomp-ringws.json ringws:0.1.0
#
# io_uring: the default seccomp profiles of Docker, Podman and containerd block io_uring_setup,
# and ringws then stops at start with "io_uring is blocked". deploy/container/seccomp-ringws.json
# is Docker's allowlist plus io_uring_setup, io_uring_enter and io_uring_register; pass it with
# --security-opt seccomp=... (Docker, Podman), or install it on every node for Kubernetes
# (deploy/container/kubernetes.yaml). Connections per container are bounded by the open-file
# limit the runtime gives it (docker run --ulimit nofile=1100000:1100000).

FROM rust:1-bookworm AS build
WORKDIR /src
# The manifest and lock first, so that the dependencies are a layer of their own.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches/protocol.rs ./benches/protocol.rs
RUN cargo build --release --locked --bin ringws \
    && strip target/release/ringws

# Debian 12's glibc, as the build stage's; the :nonroot tag runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ringws /usr/local/bin/ringws
USER 65532:65532
# 9001: WebSocket clients; 9090: the admin listener (/healthz, /metrics, /publish, /topics).
EXPOSE 9001 9090
ENTRYPOINT ["/usr/local/bin/ringws"]
# Listens on every address of the container; --cores defaults to the CPUs it may use.
CMD ["serve", "--listen", "0.0.0.0:9001", "--admin-listen", "0.0.0.0:9090"]
