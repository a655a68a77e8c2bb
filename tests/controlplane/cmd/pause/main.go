// Command pause is the pod sandbox's process on mettaton's real test node (no
// image can be pulled here, so registry.k8s.io/pause is replaced by this). It
// does what the upstream one does: it holds the pod's namespaces, reaps
// children that are re-parented to it (it is PID 1 of the pod when the pod
// shares its PID namespace), and exits 0 on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
