# Entry points; the work is in scripts/ so nothing here needs make to run.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/ec2csi/ec2csi/internal/version.Version=$(VERSION)

.PHONY: build test e2e image bench lint clean manifests

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ec2csi ./cmd/ec2csi

test:
	bash scripts/test.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...

clean:
	rm -rf bin

# Plain manifests for clusters without Helm, rendered from the chart.
manifests:
	{ echo "# Rendered from deploy/helm/ec2csi with its defaults (cloud: aws) by 'make manifests'; edit the chart, not this file."; \
	  helm template ec2csi deploy/helm/ec2csi --namespace kube-system --kube-version 1.34.4; } > deploy/manifests/ec2csi.yaml
