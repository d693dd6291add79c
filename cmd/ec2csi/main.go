// Command ec2csi serves CSI drivers for Amazon EFS and EBS, on AWS or on an
// embedded local backend, and carries the tools that go with them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

func main() {
	// Until a command configures logging (serve does, with its flags),
	// only warnings reach stderr; k8s.io/mount-utils logs through klog,
	// which is routed to the same log.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(log)
	klog.SetSlogLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ec2csi:", err)
		os.Exit(1)
	}
}
