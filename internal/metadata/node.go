package metadata

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Node is the part of a Kubernetes Node object that tells where it runs.
type Node struct {
	ProviderID string
	Labels     map[string]string
}

// NodeGetter reads Node objects.
type NodeGetter interface {
	GetNode(ctx context.Context, name string) (*Node, error)
}

// ServiceAccountDir is where Kubernetes mounts a pod's service account.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster returns a NodeGetter that reads Nodes from the API server with
// the pod's service account, or an error saying why this process is not
// in a pod that can. It is a plain HTTPS GET of /api/v1/nodes/NAME, which
// needs the "get" verb on nodes in the pod's ClusterRole; client-go would
// bring dozens of modules for this one request.
func InCluster() (NodeGetter, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST is not set")
	}
	return NewAPIServerNodes("https://"+net.JoinHostPort(host, port), ServiceAccountDir)
}

// NewAPIServerNodes reads Nodes from the API server at baseURL with the
// token and CA certificate in saDir (token, ca.crt).
func NewAPIServerNodes(baseURL, saDir string) (NodeGetter, error) {
	pem, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("service account CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("service account CA %s holds no certificate", filepath.Join(saDir, "ca.crt"))
	}
	return &apiServerNodes{
		base:      strings.TrimSuffix(baseURL, "/"),
		tokenFile: filepath.Join(saDir, "token"),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

type apiServerNodes struct {
	base      string
	tokenFile string
	client    *http.Client
}

func (a *apiServerNodes) GetNode(ctx context.Context, name string) (*Node, error) {
	// Read the token on every call: projected tokens are rotated.
	token, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/api/v1/nodes/"+url.PathEscape(name), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get node %s: the API server answered %s (the service account needs get on nodes)", name, resp.Status)
	}
	var obj struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			ProviderID string `json:"providerID"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	return &Node{ProviderID: obj.Spec.ProviderID, Labels: obj.Metadata.Labels}, nil
}
