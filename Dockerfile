# flowprobe's image, in the Prometheus style: a static binary (CGO off, built
# by `make image` into .build/) on an empty base, CA certificates for the TLS
# checks, a non-root user. No registry is needed to build it.
#
# ICMP checks need CAP_NET_RAW (docker/podman run --cap-add NET_RAW) or an
# open ping_group_range (--sysctl net.ipv4.ping_group_range="0 2147483647").
FROM scratch
ARG OS="linux"
ARG ARCH="amd64"
LABEL org.opencontainers.image.title="flowprobe" \
      org.opencontainers.image.description="Proves that the network flows a product needs really pass; Prometheus exporter" \
      org.opencontainers.image.source="https://github.com/flowprobe/flowprobe"
# `make image` stages the files below in .build/. From a clean checkout,
# `docker build .` stops at the next line with ".build/run-make-image-first:
# not found": run `make image-context` (or `make image`) first.
COPY .build/run-make-image-first /etc/flowprobe-build
COPY .build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY .build/${OS}-${ARCH}/flowprobe /bin/flowprobe
COPY deploy/examples/sios-lifekeeper.yml /etc/flowprobe/flowprobe.yml
USER 65534:65534
EXPOSE 9871
WORKDIR /
ENTRYPOINT ["/bin/flowprobe"]
CMD ["serve", "--config.file=/etc/flowprobe/flowprobe.yml"]
