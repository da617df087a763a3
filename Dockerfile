# Multi-stage build of the one pi-payments binary (it also contains pi-sim as `pi-payments sim`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pi-payments

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
