# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, run on a slim Debian
# as an unprivileged user. The binary checks its own health, so the runtime
# image needs nothing besides CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so they are cached while only the sources change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches/common \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/payments.rs && echo 'fn main() {}' > benches/jobs.rs \
    && cargo build --profile dist --locked --bin loan-tracker \
    && rm -rf src benches
COPY assets assets
COPY src src
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --profile dist --locked --bin loan-tracker

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/loan-tracker --create-home loantracker
COPY --from=build /src/target/dist/loan-tracker /usr/local/bin/loan-tracker
USER loantracker
WORKDIR /var/lib/loan-tracker
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/var/lib/loan-tracker/data \
    LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["loan-tracker", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["loan-tracker"]
CMD ["serve"]
