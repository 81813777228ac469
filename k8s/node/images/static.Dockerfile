# A static Go program alone (the control-plane components, etcd, the storage provisioner); kubeadm's
# static pods call them by name, so they are on PATH.
FROM scratch
COPY * /usr/local/bin/
ENV PATH=/usr/local/bin
