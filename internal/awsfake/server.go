package awsfake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Server is a Fake listening on a TCP socket.
type Server struct {
	*Fake
	// URL is the endpoint to give the SDK, like http://127.0.0.1:40123.
	URL string

	srv  *http.Server
	done chan error
}

// Start serves a new Fake on a free loopback port.
func Start(opts Options) (*Server, error) {
	return StartAt("127.0.0.1:0", opts)
}

// StartAt serves a new Fake on addr.
func StartAt(addr string, opts Options) (*Server, error) {
	f, err := New(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("awsfake: listen on %s: %w", addr, err)
	}
	s := &Server{
		Fake: f,
		URL:  "http://" + ln.Addr().String(),
		srv:  &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server at once and the fake's timer.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	s.Fake.Close()
	return err
}

// AWSConfig is an aws.Config for clients of this server: its region,
// static credentials, the server as the endpoint of every service, and
// the SDK's standard retryer with its usual three attempts but backoff
// capped at 20 ms, so that retries under injected faults do not slow
// tests down. Callers wanting the production retryer replace Retryer.
func (s *Server) AWSConfig() aws.Config {
	return aws.Config{
		Region:       s.Fake.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDAWSFAKE", "awsfake-secret", ""),
		BaseEndpoint: aws.String(s.URL),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 20 * time.Millisecond })
		},
	}
}

// Serve runs a Fake on listenAddr until ctx ends. With a stateDir, and
// no Devices in opts, volumes are backed by sparse files under
// stateDir/volumes and their by-id links published under stateDir/dev;
// the endpoint URL is written to stateDir/endpoint so that tools started
// later can find a fake listening on port 0.
func Serve(ctx context.Context, listenAddr, stateDir string, opts Options) error {
	if stateDir != "" {
		if err := os.MkdirAll(stateDir, 0o755); err != nil {
			return fmt.Errorf("awsfake: state dir: %w", err)
		}
		if opts.Devices == nil {
			opts.Devices = &FileDevices{Dir: filepath.Join(stateDir, "volumes")}
		}
		if opts.DevRoot == "" {
			opts.DevRoot = filepath.Join(stateDir, "dev")
		}
	}
	s, err := StartAt(listenAddr, opts)
	if err != nil {
		return err
	}
	if stateDir != "" {
		if err := os.WriteFile(filepath.Join(stateDir, "endpoint"), []byte(s.URL+"\n"), 0o644); err != nil {
			_ = s.Close()
			return fmt.Errorf("awsfake: write endpoint file: %w", err)
		}
	}
	select {
	case <-ctx.Done():
	case err := <-s.done:
		s.Fake.Close()
		return fmt.Errorf("awsfake: serve: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = s.srv.Shutdown(shutdownCtx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	s.Fake.Close()
	if err != nil {
		return fmt.Errorf("awsfake: shutdown: %w", err)
	}
	return nil
}
