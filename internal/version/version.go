// Package version reports the build's version.
package version

import "runtime/debug"

// Version is set at link time with
// -ldflags "-X github.com/ec2csi/ec2csi/internal/version.Version=v1.2.3".
// When it is not set, Get falls back to the module version or VCS revision.
var Version = ""

// Get returns the version of the running binary; never empty.
func Get() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
