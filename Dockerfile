# wasm-hypervisor daemon image.
#
#   docker build -t wasm-hypervisor .
#   docker run -d -p 127.0.0.1:8080:8080 -v wasm-hypervisor-data:/data wasm-hypervisor
#
# The container runs `wasm-hypervisor serve`, listening on 0.0.0.0:8080 with its data (the
# identity key and the audit log) in the /data volume. Every `serve` flag can also be set with
# its WASM_HYPERVISOR_… environment variable (`docker run --rm wasm-hypervisor serve --help`
# lists them), e.g. `-e WASM_HYPERVISOR_STORE=sled -e WASM_HYPERVISOR_WORKERS=4`.
# Checked by scripts/lint-container (hadolint, warnings fail).

# The toolchain that builds the release binary: the workspace needs Rust >= 1.90 (edition
# 2024); pinned to the minor release the project is developed with. Override with
# `--build-arg RUST_VERSION=…`. Builder and runtime are both Debian 12 (bookworm), so the
# binary's glibc matches the one it runs on.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src

# Dependencies first, from the manifests and the lock file alone, with empty stand-ins for the
# workspace's four crates and every bench a manifest declares (Cargo refuses a manifest whose
# declared bench is missing; scripts/lint-container checks this list): this layer is rebuilt
# only when a Cargo.toml or Cargo.lock changes, not on every source edit.
COPY Cargo.toml Cargo.lock ./
COPY protocol/Cargo.toml protocol/
COPY actors/Cargo.toml actors/
COPY client/Cargo.toml client/
RUN mkdir -p src protocol/src actors/src client/src benches actors/benches protocol/benches \
    && for stand_in in src/main.rs benches/sessions.rs benches/contention.rs \
        actors/benches/sandbox.rs actors/benches/restart.rs protocol/benches/crypto.rs; do \
        echo 'fn main() {}' > "$stand_in"; done \
    && touch src/lib.rs protocol/src/lib.rs actors/src/lib.rs client/src/lib.rs \
    && cargo build --release --locked --bin wasm-hypervisor \
    && rm -rf src protocol/src actors/src client/src benches actors/benches protocol/benches

# Then the sources. `cargo clean -p` drops the stand-ins' artifacts, so the workspace crates are
# rebuilt whatever the copied files' timestamps are (COPY keeps the build context's mtimes,
# which can be older than the stand-ins' build).
COPY src src
COPY benches benches
COPY protocol protocol
COPY actors actors
COPY client client
RUN cargo clean --release -p wasm-hypervisor -p wasm-hypervisor-protocol -p wasm-hypervisor-actors \
        -p wasm-hypervisor-client \
    && cargo build --release --locked --bin wasm-hypervisor \
    && ./target/release/wasm-hypervisor --version

# The runtime: the binary links only glibc and libgcc_s, both in bookworm-slim.
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="wasm-hypervisor" \
      org.opencontainers.image.description="A daemon that runs sealed WebAssembly programs and logs signed commitments to them" \
      org.opencontainers.image.licenses="Apache-2.0"

# An unprivileged system user with a fixed uid/gid (10001), so that volumes and bind mounts can
# be given to it (`chown 10001:10001`), and /data created with its owner: a new named volume
# starts as a copy of it, owner and mode included. 0700: the identity key lives there.
RUN groupadd --system --gid 10001 wasm-hypervisor \
    && useradd --system --uid 10001 --gid wasm-hypervisor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin wasm-hypervisor \
    && install -d -o wasm-hypervisor -g wasm-hypervisor -m 0700 /data

COPY --from=builder /src/target/release/wasm-hypervisor /usr/local/bin/wasm-hypervisor

# The defaults of `serve --listen 0.0.0.0:8080 --data-dir /data`, given as environment
# variables rather than as flags in CMD: a flag on the command line beats its environment
# variable, so flags in CMD would make `-e WASM_HYPERVISOR_LISTEN=…` silently ineffective.
ENV WASM_HYPERVISOR_LISTEN=0.0.0.0:8080 \
    WASM_HYPERVISOR_DATA_DIR=/data

VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
WORKDIR /data

# GET /healthz over bash's /dev/tcp: bookworm-slim ships bash, so no curl or wget is installed
# (no extra package, no apt lists, nothing more to patch). It connects to the port of
# WASM_HYPERVISOR_LISTEN (to loopback when that is a wildcard address) and is healthy only on a
# `200` status line within 5 seconds.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "addr=\"${WASM_HYPERVISOR_LISTEN:-0.0.0.0:8080}\"; port=\"${addr##*:}\"; host=\"${addr%:*}\"; host=\"${host#[}\"; host=\"${host%]}\"; case \"$host\" in 0.0.0.0) host=127.0.0.1 ;; ::) host=::1 ;; esac; exec 3<>\"/dev/tcp/$host/$port\" || exit 1; printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3; IFS= read -r -t 5 status <&3 || exit 1; [[ \"$status\" =~ ^HTTP/1\\.[01]\\ 200 ]]"]

ENTRYPOINT ["/usr/local/bin/wasm-hypervisor"]
CMD ["serve"]
