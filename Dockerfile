# Builds the `harsha` binary and a small runtime image for Kubernetes (k8s/).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin harsha

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home harsha
COPY --from=build /src/target/release/harsha /usr/local/bin/harsha
USER 10001
ENTRYPOINT ["/usr/local/bin/harsha"]
CMD ["serve", "customer"]
