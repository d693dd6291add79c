// Command ec2csi serves CSI drivers for Amazon EFS and EBS, on AWS or on an
// embedded local backend, and carries the tools that go with them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ec2csi:", err)
		os.Exit(1)
	}
}
