# The order saga's programs in one image: order-service, inventory-service,
# payment-service, shipping-service, notification-service, outbox-relay and
# sagactl (and the example-shipping-c replacement service), all on PATH. The command chooses the program:
#
#   docker build -t order-saga:local .
#   docker run --rm order-saga:local order-service --help
#
# Every program is configured by environment variables (docs/CONFIGURATION.md);
# docker-compose.yml runs the whole suite (docs/DOCKER.md). Works with the
# classic builder: no BuildKit-only syntax.

# Both stages start from Debian bookworm, the distribution the code is built
# and tested on (its librdkafka 2.0.2 and avro-c 1.11.1).
ARG BASE_IMAGE=debian:bookworm

FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        librdkafka-dev libavro-dev libpq-dev libjansson-dev libcurl4-openssl-dev \
        libmicrohttpd-dev libjwt-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY schemas schemas
COPY services services
COPY relay relay
COPY sagactl sagactl
COPY examples examples
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSAGA_BUILD_TESTS=OFF -DSAGA_FUZZ=OFF \
    && cmake --build /build -j "$(nproc)" \
    && cmake --install /build --prefix /out --strip \
    && ls /out/bin

FROM ${BASE_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# Only what the programs link against, plus curl for the health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        librdkafka1 libavro23 libpq5 libjansson4 libcurl4 libmicrohttpd12 libjwt0 \
        ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin saga
COPY --from=build /out/bin/ /usr/local/bin/
# HTTP_LISTEN defaults to 127.0.0.1:<port> as outside a container: set it to
# 0.0.0.0:<port> to reach /readyz, /metrics and the order API from outside
# (docker-compose.yml does, and publishes the ports on 127.0.0.1 only).
USER saga:saga
EXPOSE 8080 8081 8082 8083 8084 8085
CMD ["sagactl", "--help"]
