// Command pause is the node tests' pod sandbox process (what
// registry.k8s.io/pause is on a real node): it holds the pod's namespaces
// and waits until it is told to stop.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
