package metadata_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ec2csi/ec2csi/internal/awsfake"
	"github.com/ec2csi/ec2csi/internal/metadata"
)

const (
	instanceID = "i-0123456789abcdef0"
	zone       = "us-east-1b"
)

// imdsServer serves the fake's IMDS for one instance.
func imdsServer(t *testing.T) string {
	t.Helper()
	f, err := awsfake.New(awsfake.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	if err := f.AddInstance(instanceID, zone, "c6id.2xlarge"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.IMDS(instanceID))
	t.Cleanup(srv.Close)
	return srv.URL
}

// unreachable is an address nothing listens on.
func unreachable(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// blackhole accepts connections and never answers, like IMDS behind a hop
// limit of 1 seen from a pod.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return "http://" + ln.Addr().String()
}

func noSysfs(t *testing.T) string { return t.TempDir() }

func TestIMDS(t *testing.T) {
	inst, err := metadata.Resolve(context.Background(), metadata.Options{
		NeedZone: true, NeedInstanceID: true,
		IMDS:      metadata.NewIMDS(aws.Config{}, imdsServer(t)),
		SysfsRoot: noSysfs(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.Instance{Region: "us-east-1", Zone: zone, InstanceID: instanceID, InstanceType: "c6id.2xlarge", LaunchVolumes: 1}
	if inst.Region != want.Region || inst.Zone != want.Zone || inst.InstanceID != want.InstanceID || inst.InstanceType != want.InstanceType || inst.LaunchVolumes != 1 {
		t.Errorf("got %+v, want %+v", inst, want)
	}
	for f, s := range inst.Sources {
		if s != "imds" {
			t.Errorf("%s came from %s", f, s)
		}
	}
}

// TestFlagsWin: explicit settings are used even where IMDS says otherwise.
func TestFlagsWin(t *testing.T) {
	inst, err := metadata.Resolve(context.Background(), metadata.Options{
		Region: "eu-west-1", Zone: "eu-west-1c", InstanceID: "i-0fedcba9876543210",
		IMDS: metadata.NewIMDS(aws.Config{}, imdsServer(t)), SysfsRoot: noSysfs(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Region != "eu-west-1" || inst.Zone != "eu-west-1c" || inst.InstanceID != "i-0fedcba9876543210" || inst.Sources["zone"] != "flag" {
		t.Errorf("got %+v", inst)
	}
}

// TestIMDSUnreachable: with IMDS refusing or never answering, flags and an
// EC2 look-up do, quickly.
func TestIMDSUnreachable(t *testing.T) {
	for name, endpoint := range map[string]string{"refused": unreachable(t), "blackhole": blackhole(t)} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			inst, err := metadata.Resolve(context.Background(), metadata.Options{
				Region: "us-east-1", Zone: zone, InstanceID: instanceID,
				NeedZone: true, NeedInstanceID: true,
				IMDS: metadata.NewIMDS(aws.Config{}, endpoint), IMDSTimeout: 2 * time.Second,
				SysfsRoot: noSysfs(t),
				Instances: func(_ context.Context, region, id string) (string, string, int, error) {
					if region != "us-east-1" || id != instanceID {
						t.Errorf("EC2 asked about %s in %s", id, region)
					}
					return zone, "m5.large", 2, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if inst.InstanceType != "m5.large" || inst.Sources["instance-type"] != "ec2" || inst.NetworkInterfaces != 2 {
				t.Errorf("got %+v", inst)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %s with IMDS %s", d, name)
			}
		})
	}
}

type nodes map[string]*metadata.Node

func (n nodes) GetNode(_ context.Context, name string) (*metadata.Node, error) {
	if node, ok := n[name]; ok {
		return node, nil
	}
	return nil, errors.New("nodes \"" + name + "\" not found")
}

func TestNodeObject(t *testing.T) {
	inst, err := metadata.Resolve(context.Background(), metadata.Options{
		NeedZone: true, NeedInstanceID: true,
		IMDS:     metadata.NewIMDS(aws.Config{}, unreachable(t)),
		NodeName: "worker-1",
		Nodes: nodes{"worker-1": {
			ProviderID: "aws:///us-west-2b/" + instanceID,
			Labels:     map[string]string{"node.kubernetes.io/instance-type": "m6i.xlarge"},
		}},
		SysfsRoot: noSysfs(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Region != "us-west-2" || inst.Zone != "us-west-2b" || inst.InstanceID != instanceID || inst.InstanceType != "m6i.xlarge" {
		t.Errorf("got %+v", inst)
	}
	if inst.Sources["region"] != "zone" || inst.Sources["instance-id"] != "node" {
		t.Errorf("sources %v", inst.Sources)
	}
}

// TestAPIServerNodes reads a Node the way a pod does: HTTPS to the API
// server with the service account's token and CA.
func TestAPIServerNodes(t *testing.T) {
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sa-token" {
			http.Error(w, `{"kind":"Status","code":401}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v1/nodes/worker-1" {
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"kind":"Node","metadata":{"name":"worker-1","labels":{"topology.kubernetes.io/zone":"eu-central-1a","topology.kubernetes.io/region":"eu-central-1"}},"spec":{"providerID":"aws:///eu-central-1a/i-0aaaaaaaaaaaaaaaa"}}`))
	}))
	defer api.Close()
	sa := t.TempDir()
	writeCA(t, filepath.Join(sa, "ca.crt"), api.TLS)
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := metadata.NewAPIServerNodes(api.URL, sa)
	if err != nil {
		t.Fatal(err)
	}
	n, err := g.GetNode(context.Background(), "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if n.ProviderID != "aws:///eu-central-1a/i-0aaaaaaaaaaaaaaaa" || n.Labels["topology.kubernetes.io/region"] != "eu-central-1" {
		t.Errorf("got %+v", n)
	}
	if _, err := g.GetNode(context.Background(), "worker-2"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown node: %v", err)
	}
}

func writeCA(t *testing.T, path string, cfg *tls.Config) {
	t.Helper()
	cert := cfg.Certificates[0].Certificate[0]
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBoardAssetTag: without IMDS and Kubernetes, a Nitro instance's DMI
// asset tag gives the instance ID and EC2 the rest.
func TestBoardAssetTag(t *testing.T) {
	sys := t.TempDir()
	tag := filepath.Join(sys, metadata.AssetTagPath)
	if err := os.MkdirAll(filepath.Dir(tag), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tag, []byte(instanceID+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	inst, err := metadata.Resolve(context.Background(), metadata.Options{
		Region:   "us-east-1",
		NeedZone: true, NeedInstanceID: true,
		IMDS:             metadata.NewIMDS(aws.Config{}, unreachable(t)),
		NodesUnavailable: "not in a pod",
		SysfsRoot:        sys,
		Instances: func(_ context.Context, region, id string) (string, string, int, error) {
			return zone, "m7g.large", 1, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if inst.InstanceID != instanceID || inst.Sources["instance-id"] != "sysfs" || inst.Zone != zone || inst.Sources["zone"] != "ec2" {
		t.Errorf("got %+v", inst)
	}
}

// TestNothingKnown fails with one sentence that names every source tried
// and the flags to set.
func TestNothingKnown(t *testing.T) {
	_, err := metadata.Resolve(context.Background(), metadata.Options{
		NeedZone: true, NeedInstanceID: true,
		IMDS:             metadata.NewIMDS(aws.Config{}, unreachable(t)),
		NodesUnavailable: "not running in a Kubernetes pod",
		SysfsRoot:        noSysfs(t),
	})
	if err == nil {
		t.Fatal("resolved from nothing")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{"region", "availability zone", "instance ID", "IMDS", "Kubernetes Node", "board_asset_tag", "--region", "--zone", "--instance-id"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message does not mention %q", want)
		}
	}
	if strings.Contains(msg, "\n") || strings.Count(msg, ". ") > 0 {
		t.Errorf("not one sentence: %q", msg)
	}
}
