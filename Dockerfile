# syntax=docker/dockerfile:1
# The mettaton controller image:
#
#   docker build -t registry.example.com/mettaton:0.1.0 .
#   docker push registry.example.com/mettaton:0.1.0
#   helm install mettaton charts/mettaton -n mettaton --create-namespace \
#     --set image.repository=registry.example.com/mettaton
#
# Not built by ./run-tests or CI: no base image can be pulled on the machines
# they run on. The chart's tests run the same binary out of the cluster instead,
# and kwok stands in for the kubelet, so no image is needed there.

# --- build ------------------------------------------------------------------
# Debian 12 (bookworm), like the runtime image, so the binary links against the
# same glibc. The toolchain is the one the project is developed with.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# --locked: exactly the dependency versions of Cargo.lock. The cache mounts keep
# downloaded crates and compiled dependencies between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mettaton \
 && install -m 0755 target/release/mettaton /mettaton

# --- runtime ----------------------------------------------------------------
# Distroless "cc": glibc, libgcc and CA certificates, no shell, no package
# manager. The binary needs nothing else (TLS is rustls).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /mettaton /mettaton
# 65532 is distroless' "nonroot"; the chart runs the pod as this uid/gid too
# (runAsNonRoot needs a numeric user to check).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/mettaton"]
CMD ["controller"]
