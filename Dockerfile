# The replay server as a container image: `cargo xtask container` builds it (with buildah; add
# `--check` to start it with podman and check it). The build context is target/container, which
# that command stages: the release binary, the few C libraries it links (glibc's loader, libc,
# libm, libgcc_s), the CA certificates for TLS to PostgreSQL and S3, an /etc/passwd naming the
# unprivileged user, and an empty /data. Nothing else: no shell, no package manager, and no base
# image to pull (`FROM scratch`).
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 data/ /data/
ENV REPLAY_LISTEN=0.0.0.0:8080 \
    REPLAY_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME /data
EXPOSE 8080
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/replay-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/replay-server"]
CMD ["serve"]
