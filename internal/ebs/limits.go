package ebs

import "fmt"

// volumeType holds EBS's documented limits for one volume type (the EC2
// API reference for CreateVolume and the EBS User Guide).
type volumeType struct {
	name           string
	minGiB, maxGiB int64
	// IOPS: iopsMode says whether the StorageClass may (optional) or must
	// (required) set them, or cannot (none).
	iopsMode                 iopsMode
	minIOPS, maxIOPS         int64
	defaultIOPS              int64
	maxIOPSPerGiB            int64
	throughput               bool
	minThroughput            int64
	maxThroughput            int64
	defaultThroughput        int64
	maxThroughputPerIOPSx100 int64 // MiB/s per IOPS, times 100 (gp3: 0.25)
	multiAttach              bool
}

type iopsMode int

const (
	iopsNone iopsMode = iota
	iopsOptional
	iopsRequired
)

const defaultVolumeType = "gp3"

var volumeTypes = map[string]volumeType{
	"gp3": {name: "gp3", minGiB: 1, maxGiB: 65536, iopsMode: iopsOptional, minIOPS: 3000, maxIOPS: 80000, defaultIOPS: 3000, maxIOPSPerGiB: 500,
		throughput: true, minThroughput: 125, maxThroughput: 2000, defaultThroughput: 125, maxThroughputPerIOPSx100: 25},
	"gp2":      {name: "gp2", minGiB: 1, maxGiB: 16384},
	"io1":      {name: "io1", minGiB: 4, maxGiB: 16384, iopsMode: iopsRequired, minIOPS: 100, maxIOPS: 64000, maxIOPSPerGiB: 50, multiAttach: true},
	"io2":      {name: "io2", minGiB: 4, maxGiB: 65536, iopsMode: iopsRequired, minIOPS: 100, maxIOPS: 256000, maxIOPSPerGiB: 1000, multiAttach: true},
	"st1":      {name: "st1", minGiB: 125, maxGiB: 16384},
	"sc1":      {name: "sc1", minGiB: 125, maxGiB: 16384},
	"standard": {name: "standard", minGiB: 1, maxGiB: 1024},
}

// performance is what a volume is provisioned with beyond its size.
type performance struct {
	IOPS       int64
	Throughput int64
}

// checkPerformance validates IOPS and throughput for a volume of sizeGiB;
// the error names the parameter, the value and the allowed range.
func (t volumeType) checkPerformance(sizeGiB int64, p performance) error {
	if p.IOPS != 0 {
		if t.iopsMode == iopsNone {
			return fmt.Errorf("parameter iops: %s volumes have no provisioned IOPS; IOPS apply to gp3, io1 and io2", t.name)
		}
		if p.IOPS < t.minIOPS || p.IOPS > t.maxIOPS {
			return fmt.Errorf("parameter iops=%d: %s allows %d to %d", p.IOPS, t.name, t.minIOPS, t.maxIOPS)
		}
		// gp3's baseline is free at any size; beyond it the ratio applies.
		if limit := t.maxIOPSPerGiB * sizeGiB; p.IOPS > limit && p.IOPS > t.defaultIOPS {
			return fmt.Errorf("parameter iops=%d: %s allows at most %d IOPS per GiB, so %d for a %d GiB volume", p.IOPS, t.name, t.maxIOPSPerGiB, max(limit, t.defaultIOPS), sizeGiB)
		}
	} else if t.iopsMode == iopsRequired {
		return fmt.Errorf("parameter iops or iopsPerGB is required for %s volumes (%d to %d IOPS)", t.name, t.minIOPS, t.maxIOPS)
	}
	if p.Throughput != 0 {
		if !t.throughput {
			return fmt.Errorf("parameter throughput: %s volumes have no provisioned throughput; it applies to gp3", t.name)
		}
		if p.Throughput < t.minThroughput || p.Throughput > t.maxThroughput {
			return fmt.Errorf("parameter throughput=%d: %s allows %d to %d MiB/s", p.Throughput, t.name, t.minThroughput, t.maxThroughput)
		}
		iops := p.IOPS
		if iops == 0 {
			iops = t.defaultIOPS
		}
		if p.Throughput*100 > iops*t.maxThroughputPerIOPSx100 && p.Throughput > t.defaultThroughput {
			return fmt.Errorf("parameter throughput=%d: %s allows 0.25 MiB/s per provisioned IOPS, so %d MiB/s with %d IOPS; raise iops", p.Throughput, t.name, iops*t.maxThroughputPerIOPSx100/100, iops)
		}
	}
	return nil
}

// iopsFromPerGiB turns iopsPerGB into IOPS for a volume of sizeGiB, as the
// upstream driver does: capped at the type's maximum, and raised to its
// minimum only when allowed.
func (t volumeType) iopsFromPerGiB(perGiB, sizeGiB int64, allowIncrease bool) (int64, error) {
	if t.iopsMode == iopsNone {
		return 0, fmt.Errorf("parameter iopsPerGB: %s volumes have no provisioned IOPS; it applies to gp3, io1 and io2", t.name)
	}
	if perGiB > t.maxIOPSPerGiB {
		return 0, fmt.Errorf("parameter iopsPerGB=%d: %s allows at most %d IOPS per GiB", perGiB, t.name, t.maxIOPSPerGiB)
	}
	iops := perGiB * sizeGiB
	if iops < t.minIOPS {
		if !allowIncrease {
			return 0, fmt.Errorf("parameters iopsPerGB=%d and size %d GiB give %d IOPS, below the %d minimum of %s; set allowAutoIOPSPerGBIncrease: \"true\" or raise iopsPerGB", perGiB, sizeGiB, iops, t.minIOPS, t.name)
		}
		iops = t.minIOPS
	}
	return min(iops, t.maxIOPS), nil
}
