# The pod sandbox (k8s/node/pause).
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
