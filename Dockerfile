# camjoin container image (docker-compose.yml builds it for the camjoin and
# gen services; README "Run the stack").
#
# Two stages on Debian 12 (bookworm), the distribution the project builds and
# tests on: the first builds with CMake (Release, no tests) and installs into a
# staging directory; the second holds only the shared libraries the binaries
# load, camjoin, camjoin-gen and the example reference table, and runs as an
# unprivileged user (uid 10001).
#
# No Docker engine runs in CI, so tests/integration/t_stack.sh checks this file
# without one: it runs the build stage's cmake commands (paths mapped), checks
# that every COPY --from=build source exists in the staged install, that every
# library the binaries link (readelf NEEDED) belongs to a package installed
# below, that every package exists in bookworm, and runs the HEALTHCHECK
# command against a live camjoin.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libpq-dev libjansson-dev libuv1-dev libxxhash-dev \
      libcsv-dev libinih-dev libsystemd-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCAMJOIN_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/staging cmake --install /build

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libpq5 libjansson4 libuv1 libxxhash0 libcsv3 libinih1 \
      libsystemd0 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin camjoin
COPY --from=build /staging/usr/bin/camjoin /staging/usr/bin/camjoin-gen /usr/bin/
# the example reference table at camjoin's default reference.path; mount your
# own CSV over it (or pass --reference)
COPY --from=build /staging/usr/share/camjoin/cameras.csv /etc/camjoin/cameras.csv
# schema.sql and roles.sql, for setting up a least-privilege role by hand
COPY --from=build /staging/usr/share/camjoin/ /usr/share/camjoin/
USER 10001:10001
EXPOSE 9464
# /healthz answers 200 while camjoin's event loop turns. bash's /dev/tcp does
# the request (the image has no curl); the port must be the one given to
# --http, which listens on every interface here so that Prometheus can scrape.
ENV CAMJOIN_HEALTH_PORT=9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CAMJOIN_HEALTH_PORT} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 3 head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["camjoin"]
CMD ["--http", "0.0.0.0:9464"]
