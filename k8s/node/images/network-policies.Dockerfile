# kube-network-policies enforces NetworkPolicies with nftables (its knftables client calls nft).
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install --yes --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
COPY kube-network-policies /bin/netpol
ENTRYPOINT ["/bin/netpol"]
