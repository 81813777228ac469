# local-path-provisioner's helper pods run a shell script (mkdir / rm of a volume's folder).
ARG MINBASE=retail-etl-standin-minbase:bookworm
FROM ${MINBASE}
