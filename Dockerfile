# Multi-stage build of the one pi-payments binary (it also contains pi-sim as `pi-payments sim`).
FROM rust:1.95-bookworm AS build
WORKDIR /src

# Dependency layer: the manifests with stub sources, so that the dependencies (most of the
# build time) are compiled again only when Cargo.toml or Cargo.lock change, not on every
# source edit. The stubs are every target the manifests name (cargo refuses a missing one).
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY api/Cargo.toml api/
COPY worker/Cargo.toml worker/
COPY sim/Cargo.toml sim/
RUN for crate in . core api worker sim; do mkdir -p "$crate/src" && : > "$crate/src/lib.rs"; done \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > sim/src/main.rs \
 && mkdir -p benches && echo 'fn main() {}' > benches/ledger_callbacks.rs \
 && cargo build --release --locked --bin pi-payments \
 && rm -rf src core/src api/src worker/src sim/src benches

COPY . .
# COPY keeps the sources' modification times, which may be older than the stubs' build:
# touch them so that cargo rebuilds our crates instead of keeping the stubs.
RUN find src core/src api/src worker/src sim/src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin pi-payments

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/pi-payments --create-home pi
COPY --from=build /src/target/release/pi-payments /usr/local/bin/pi-payments
COPY --from=build /src/migrations /usr/share/pi-payments/migrations
USER pi
WORKDIR /var/lib/pi-payments
ENV BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["pi-payments"]
CMD ["serve"]
