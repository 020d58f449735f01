// Command pause is the process that holds a pod sandbox's namespaces open in the test
// cluster: it does nothing until SIGINT or SIGTERM, then exits 0. As PID 1 of a pod that
// shares its PID namespace it also reaps orphaned children, so they never stay zombies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
