package main

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// perDriverFlag holds a value per driver. A bare value ("unix:///x.sock")
// applies to the only driver served; "efs=…" and "ebs=…" address one each.
// The flag may be repeated or given as a comma-separated list.
type perDriverFlag struct {
	values map[string]string
	bare   []string
}

var _ pflag.Value = (*perDriverFlag)(nil)

func newPerDriverFlag(defaults map[string]string) *perDriverFlag {
	v := &perDriverFlag{values: map[string]string{}}
	for k, d := range defaults {
		v.values[k] = d
	}
	return v
}

func (f *perDriverFlag) String() string {
	keys := make([]string, 0, len(f.values))
	for k := range f.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+f.values[k])
	}
	return strings.Join(parts, ",")
}

func (f *perDriverFlag) Type() string { return "[driver=]value" }

func (f *perDriverFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && (k == "efs" || k == "ebs") {
			f.values[k] = v
			continue
		}
		f.bare = append(f.bare, part)
	}
	return nil
}

// resolve applies bare values to the drivers being served.
func (f *perDriverFlag) resolve(name string, drivers []string) (map[string]string, error) {
	switch {
	case len(f.bare) > 1:
		return nil, fmt.Errorf("--%s given %d plain values; use efs=… and ebs=…", name, len(f.bare))
	case len(f.bare) == 1 && len(drivers) > 1:
		return nil, fmt.Errorf("--%s %s is ambiguous with --driver all; write efs=… and/or ebs=…", name, f.bare[0])
	case len(f.bare) == 1:
		f.values[drivers[0]] = f.bare[0]
	}
	return f.values, nil
}

// logFlags configure the process's structured log.
type logFlags struct {
	level  string
	format string
}

func (l *logFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
}

func (l *logFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: choose debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch l.format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: choose text or json", l.format)
	}
	log := slog.New(h)
	slog.SetDefault(log)
	// k8s.io/mount-utils logs through klog; send it to the same log, at
	// the same level.
	klog.SetSlogLogger(log)
	return log, nil
}
