# kube-proxy programs the node's iptables rules with the iptables and conntrack tools.
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends iptables conntrack ipset kmod \
 && rm -rf /var/lib/apt/lists/*
COPY kube-proxy /usr/local/bin/kube-proxy
