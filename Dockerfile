# ec2csi image for people with a Docker engine. The e2e cluster on machines
# without one builds the same layout with e2e/cluster/image-ec2csi.sh.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static, so the runtime stage needs no particular libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ec2csi ./cmd/ec2csi

FROM debian:bookworm-slim
# What a node plugin runs to attach, probe, format, grow and mount volumes
# (losetup/blkid/findmnt, mkfs/resize2fs, xfs_growfs, btrfs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      mount util-linux e2fsprogs xfsprogs btrfs-progs ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ec2csi /usr/local/bin/ec2csi
ENTRYPOINT ["/usr/local/bin/ec2csi"]
