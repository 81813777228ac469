# moto's S3 server as a container, built like the product's image (on the stand-in base, versions
# from the lock): the S3 store of the container smoke test, under the chart's MinIO Service name.
ARG PYTHON_IMAGE=retail-etl-standin-python:bookworm
FROM ${PYTHON_IMAGE}
COPY dev.txt /tmp/dev.txt
RUN python3 -m venv /opt/moto \
 && /opt/moto/bin/pip install --quiet --no-cache-dir --disable-pip-version-check -c /tmp/dev.txt 'moto[server]' \
 && rm /tmp/dev.txt
USER 10001:10001
EXPOSE 9000
CMD ["/opt/moto/bin/python", "-m", "moto.server", "-H", "0.0.0.0", "-p", "9000"]
