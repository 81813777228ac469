// Command pause is the pod sandbox's process: it holds the pod's namespaces open, reaps any
// orphan that lands on it (SIGCHLD ignored: the kernel reaps), and exits on SIGINT or SIGTERM.
// The node image's containerd runs it as its sandbox image (built from source: no registry).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signal.Ignore(syscall.SIGCHLD)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
