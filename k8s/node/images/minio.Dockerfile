# MinIO from its Go module (k8s/cluster-cache.sh: MINIO_VERSION), under the chart's image name;
# the chart runs `minio server ...` as uid 10001 with a read-only root filesystem.
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
COPY minio /usr/bin/minio
ENTRYPOINT ["/usr/bin/minio"]
