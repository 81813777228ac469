# A stand-in for python:3.11-slim-bookworm, for machines that reach no container registry: Debian
# bookworm's minbase (debootstrap, imported by .ci/image) with Debian's Python 3.11 and venv.
# It also trusts the build machine's extra certificate authorities (Debian's local CA folder,
# passed in the build context), which a TLS-intercepting egress needs for pip to reach PyPI;
# the real base and the real image never carry them.
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends \
      python3 python3-venv ca-certificates \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# pip's own certificate bundle knows nothing of the local authorities: the system's does
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
