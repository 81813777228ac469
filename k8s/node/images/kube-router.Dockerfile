# kube-router, firewall only: enforces NetworkPolicies with iptables and ipset (Debian's, with the
# nf_tables backend the node's kube-proxy uses too).
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends iptables ipset \
 && rm -rf /var/lib/apt/lists/*
COPY kube-router /usr/local/bin/kube-router
ENTRYPOINT ["/usr/local/bin/kube-router"]
