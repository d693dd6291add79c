# Entry points; the work is in scripts/ so nothing here needs make to run.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/ec2csi/ec2csi/internal/version.Version=$(VERSION)

.PHONY: build test e2e image bench lint clean manifests

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ec2csi ./cmd/ec2csi

test:
	bash scripts/test.sh

# The container image without Docker: the ec2csi binary on a Debian minbase
# rootfs (mount, mkfs, resize2fs, xfs_growfs, blkid) as a docker-archive,
# importable with `ctr images import` or `docker load`. With Docker, the
# root Dockerfile builds the same image.
IMAGE ?= ec2csi.local/ec2csi:$(VERSION)
image:
	mkdir -p _output
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o _output/ec2csi ./cmd/ec2csi
	bash e2e/cluster/image-ec2csi.sh _output/ec2csi _output/ec2csi-image.tar $(IMAGE)

# The end-to-end suite on a real single-node cluster built on this machine.
e2e:
	bash e2e/run.sh

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...

clean:
	rm -rf bin _output

# Plain manifests for clusters without Helm, rendered from the chart.
manifests:
	{ echo "# Rendered from deploy/helm/ec2csi with its defaults (cloud: aws) by 'make manifests'; edit the chart, not this file."; \
	  helm template ec2csi deploy/helm/ec2csi --namespace kube-system --kube-version 1.34.4; } > deploy/manifests/ec2csi.yaml
