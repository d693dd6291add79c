// Package metadata finds out where an ec2csi process runs on AWS: the
// region, availability zone, instance ID and instance type. Upstream
// drivers read them from IMDS and fail where IMDS is out of reach (a hop
// limit of 1 from a pod, IMDS disabled, kube2iam or kiam in front of it);
// this package asks, in order:
//
//  1. explicit settings (the --region, --zone and --instance-id flags, and
//     the SDK's AWS_REGION); they win over everything else,
//  2. IMDSv2, with short timeouts,
//  3. the Kubernetes Node object (spec.providerID aws:///ZONE/i-…, the
//     topology and instance-type labels), read with the pod's service
//     account,
//  4. the instance itself: on Nitro, the DMI board asset tag holds the
//     instance ID, and EC2's DescribeInstances then gives zone and type,
//
// and fails with one sentence naming what it tried and how to set the
// value when none of them answers. Every source can be replaced in tests.
package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Instance is what the drivers need to know about the EC2 instance.
type Instance struct {
	Region       string
	Zone         string
	InstanceID   string
	InstanceType string
	// NetworkInterfaces is how many are attached, 0 when unknown.
	NetworkInterfaces int
	// LaunchVolumes is how many EBS volumes, the root volume included, the
	// instance was launched with; 0 when unknown.
	LaunchVolumes int
	// Sources says where each field came from: "flag", "imds", "node",
	// "sysfs", "ec2" or "zone" (a region derived from the zone's name).
	Sources map[string]string
}

// InstanceLookup asks EC2 about an instance: its zone, type and number of
// network interfaces.
type InstanceLookup func(ctx context.Context, region, instanceID string) (zone, instanceType string, enis int, err error)

// Options say what is already known and where to look for the rest.
type Options struct {
	// Region, Zone and InstanceID are explicit settings (flags); they are
	// used as given.
	Region, Zone, InstanceID string
	// NeedZone and NeedInstanceID make Resolve fail when the zone or the
	// instance ID cannot be found; the region is always needed. The
	// instance type is looked for but optional.
	NeedZone, NeedInstanceID bool

	// IMDS is the instance metadata client; nil skips IMDS.
	IMDS IMDS
	// IMDSTimeout bounds all IMDS requests together. Default 3 s.
	IMDSTimeout time.Duration

	// NodeName is the Kubernetes Node to read; empty skips that source.
	NodeName string
	// Nodes reads Node objects; nil skips that source. InCluster gives the
	// one a pod uses.
	Nodes NodeGetter
	// NodesUnavailable explains why Nodes is nil, for the error message.
	NodesUnavailable string

	// SysfsRoot is where sysfs is mounted. Default /sys.
	SysfsRoot string
	// Instances looks an instance up in EC2; nil skips that source.
	Instances InstanceLookup

	Log *slog.Logger
}

// Field names, for Sources.
const (
	FieldRegion       = "region"
	FieldZone         = "zone"
	FieldInstanceID   = "instance-id"
	FieldInstanceType = "instance-type"
)

// resolver carries one Resolve call.
type resolver struct {
	o     Options
	inst  *Instance
	tried []string
}

// set fills a field that is still empty.
func (r *resolver) set(field, value, source string) {
	if value == "" {
		return
	}
	p := map[string]*string{
		FieldRegion: &r.inst.Region, FieldZone: &r.inst.Zone,
		FieldInstanceID: &r.inst.InstanceID, FieldInstanceType: &r.inst.InstanceType,
	}[field]
	if *p == "" {
		*p = value
		r.inst.Sources[field] = source
	}
}

func (r *resolver) missing() []string {
	var m []string
	if r.inst.Region == "" {
		m = append(m, FieldRegion)
	}
	if r.o.NeedZone && r.inst.Zone == "" {
		m = append(m, FieldZone)
	}
	if r.o.NeedInstanceID && r.inst.InstanceID == "" {
		m = append(m, FieldInstanceID)
	}
	return m
}

// done reports whether nothing more is worth asking for.
func (r *resolver) done() bool {
	return len(r.missing()) == 0 && r.inst.InstanceType != "" && r.inst.Zone != ""
}

// Resolve finds the instance's metadata. It never blocks for long: IMDS has
// IMDSTimeout, the Node object a few seconds, and EC2 the context.
func Resolve(ctx context.Context, o Options) (*Instance, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.IMDSTimeout == 0 {
		o.IMDSTimeout = 3 * time.Second
	}
	if o.SysfsRoot == "" {
		o.SysfsRoot = "/sys"
	}
	r := &resolver{o: o, inst: &Instance{Sources: map[string]string{}}}
	r.set(FieldRegion, o.Region, "flag")
	r.set(FieldZone, o.Zone, "flag")
	r.set(FieldInstanceID, o.InstanceID, "flag")

	steps := []func(context.Context){r.fromIMDS, r.fromNode, r.fromSysfs, r.regionFromZone, r.fromEC2}
	for _, step := range steps {
		if r.done() {
			break
		}
		step(ctx)
	}
	r.regionFromZone(ctx)
	if m := r.missing(); len(m) > 0 {
		return nil, r.failure(m)
	}
	o.Log.Info("instance metadata", "region", r.inst.Region, "zone", r.inst.Zone, "instance", r.inst.InstanceID,
		"type", r.inst.InstanceType, "sources", r.inst.Sources)
	return r.inst, nil
}

func (r *resolver) fromIMDS(ctx context.Context) {
	if r.o.IMDS == nil {
		r.tried = append(r.tried, "IMDS (disabled)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.IMDSTimeout)
	defer cancel()
	doc, err := r.o.IMDS.IdentityDocument(ctx)
	if err != nil {
		r.tried = append(r.tried, fmt.Sprintf("IMDS (%s)", shortError(err)))
		r.o.Log.Info("IMDS is not reachable; trying the other sources of instance metadata", "error", err)
		return
	}
	r.set(FieldRegion, doc.Region, "imds")
	r.set(FieldZone, doc.AvailabilityZone, "imds")
	r.set(FieldInstanceID, doc.InstanceID, "imds")
	r.set(FieldInstanceType, doc.InstanceType, "imds")
	// Only meaningful when IMDS describes this very instance.
	if r.inst.InstanceID == doc.InstanceID {
		if n, err := r.o.IMDS.Count(ctx, "network/interfaces/macs"); err == nil && n > 0 {
			r.inst.NetworkInterfaces = n
		}
		if names, err := r.o.IMDS.List(ctx, "block-device-mapping"); err == nil {
			ebs := 1 // the root volume
			for _, n := range names {
				if strings.HasPrefix(n, "ebs") {
					ebs++
				}
			}
			r.inst.LaunchVolumes = ebs
		}
	}
}

func (r *resolver) fromNode(ctx context.Context) {
	switch {
	case r.o.Nodes == nil:
		why := r.o.NodesUnavailable
		if why == "" {
			why = "not configured"
		}
		r.tried = append(r.tried, fmt.Sprintf("the Kubernetes Node object (%s)", why))
		return
	case r.o.NodeName == "":
		r.tried = append(r.tried, "the Kubernetes Node object (no node name: set CSI_NODE_NAME or --kube-node-name)")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := r.o.Nodes.GetNode(ctx, r.o.NodeName)
	if err != nil {
		r.tried = append(r.tried, fmt.Sprintf("the Kubernetes Node object %s (%s)", r.o.NodeName, shortError(err)))
		return
	}
	zone, id := parseProviderID(n.ProviderID)
	r.set(FieldInstanceID, id, "node")
	r.set(FieldZone, zone, "node")
	r.set(FieldZone, n.Labels["topology.kubernetes.io/zone"], "node")
	r.set(FieldZone, n.Labels["failure-domain.beta.kubernetes.io/zone"], "node")
	r.set(FieldRegion, n.Labels["topology.kubernetes.io/region"], "node")
	r.set(FieldRegion, n.Labels["failure-domain.beta.kubernetes.io/region"], "node")
	r.set(FieldInstanceType, n.Labels["node.kubernetes.io/instance-type"], "node")
	r.set(FieldInstanceType, n.Labels["beta.kubernetes.io/instance-type"], "node")
	if len(r.missing()) > 0 {
		r.tried = append(r.tried, fmt.Sprintf("the Kubernetes Node object %s (no providerID aws:///ZONE/i-… or topology labels)", r.o.NodeName))
	}
}

var assetTagRe = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// AssetTagPath is where Nitro instances expose their instance ID, below
// the sysfs root.
const AssetTagPath = "devices/virtual/dmi/id/board_asset_tag"

func (r *resolver) fromSysfs(context.Context) {
	if r.inst.InstanceID != "" {
		return
	}
	path := filepath.Join(r.o.SysfsRoot, AssetTagPath)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.tried = append(r.tried, path+" (missing: not a Nitro instance)")
	case err != nil:
		r.tried = append(r.tried, fmt.Sprintf("%s (%s)", path, shortError(err)))
	case !assetTagRe.MatchString(strings.TrimSpace(string(b))):
		r.tried = append(r.tried, fmt.Sprintf("%s (%q is no instance ID)", path, strings.TrimSpace(string(b))))
	default:
		r.set(FieldInstanceID, strings.TrimSpace(string(b)), "sysfs")
	}
}

// regionRe takes the region out of a zone name: us-east-1a, us-west-2-lax-1a
// (a Local Zone), us-gov-west-1a.
var regionRe = regexp.MustCompile(`^([a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+)`)

func (r *resolver) regionFromZone(context.Context) {
	if r.inst.Region == "" {
		if m := regionRe.FindStringSubmatch(r.inst.Zone); m != nil {
			r.set(FieldRegion, m[1], "zone")
		}
	}
}

func (r *resolver) fromEC2(ctx context.Context) {
	switch {
	case r.inst.Zone != "" && r.inst.InstanceType != "":
		return
	case r.o.Instances == nil || r.inst.InstanceID == "" || r.inst.Region == "":
		return
	}
	zone, typ, enis, err := r.o.Instances(ctx, r.inst.Region, r.inst.InstanceID)
	if err != nil {
		r.tried = append(r.tried, fmt.Sprintf("EC2 DescribeInstances for %s (%s)", r.inst.InstanceID, shortError(err)))
		return
	}
	r.set(FieldZone, zone, "ec2")
	r.set(FieldInstanceType, typ, "ec2")
	if r.inst.NetworkInterfaces == 0 {
		r.inst.NetworkInterfaces = enis
	}
}

// failure is the one sentence Resolve fails with.
func (r *resolver) failure(missing []string) error {
	flags := map[string]string{FieldRegion: "--region", FieldZone: "--zone", FieldInstanceID: "--instance-id"}
	var names, set []string
	for _, m := range missing {
		names = append(names, map[string]string{FieldRegion: "AWS region", FieldZone: "availability zone", FieldInstanceID: "instance ID"}[m])
		set = append(set, flags[m])
	}
	how := "set " + joinAnd(set)
	if slices.Contains(missing, FieldRegion) {
		how += " (or AWS_REGION)"
	}
	return fmt.Errorf("cannot determine this node's %s: tried %s; %s", joinAnd(names), joinAnd(r.tried), how)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return "nothing"
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// shortError keeps the telling part of an error: the sentence must stay
// readable. The SDK's IMDS client flattens its causes into text, so the
// usual ones are recognised by their words too.
func shortError(err error) string {
	var opErr *net.OpError
	var timeout interface{ Timeout() bool }
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout(),
		strings.Contains(msg, "deadline exceeded"), strings.Contains(msg, "Client.Timeout"), strings.Contains(msg, "i/o timeout"):
		return "no answer in time"
	case errors.As(err, &opErr):
		return fmt.Sprintf("unreachable: %s %s: %v", opErr.Op, opErr.Addr, opErr.Err)
	case strings.Contains(msg, "connection refused"):
		return "unreachable: connection refused"
	case strings.Contains(msg, "AWS_EC2_METADATA_DISABLED"), strings.Contains(msg, "access disabled"):
		return "disabled by AWS_EC2_METADATA_DISABLED"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return err.Error()
}

// parseProviderID reads aws:///us-east-1a/i-0123… (and the older
// aws://us-east-1a/i-… and aws:///i-… forms).
func parseProviderID(p string) (zone, instanceID string) {
	rest, ok := strings.CutPrefix(p, "aws://")
	if !ok {
		return "", ""
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if n := len(parts); n > 0 && assetTagRe.MatchString(parts[n-1]) {
		instanceID = parts[n-1]
		if n > 1 {
			zone = parts[n-2]
		}
	}
	return zone, instanceID
}
