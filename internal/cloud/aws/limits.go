package aws

import (
	"math"
	"strings"
)

// EBS attachment limits (EC2 User Guide, "Instance volume limits"):
//
//   - Nitro instances share 28 attachment slots between EBS volumes,
//     network interfaces and NVMe instance store volumes.
//   - Xen instances can attach about 40 volumes; more risks boot failures.
//
// Newer types with a dedicated EBS limit (some 7th and 8th generation
// sizes) are counted as shared here, which under-reports them: a
// conservative answer that --volume-attach-limit can raise.
const (
	nitroSharedSlots = 28
	xenVolumeLimit   = 40
)

// xenFamilies are the instance families built on the Xen hypervisor.
var xenFamilies = map[string]bool{
	"c1": true, "c3": true, "c4": true, "d2": true, "g2": true, "g3": true, "g3s": true,
	"h1": true, "i2": true, "i3": true, "m1": true, "m2": true, "m3": true, "m4": true,
	"p2": true, "p3": true, "r3": true, "r4": true, "t1": true, "t2": true,
	"x1": true, "x1e": true,
}

// storeDisks overrides, per family, the instance store volumes of the
// largest size, for families the rules in instanceStoreDisks get wrong.
var storeDisks = map[string]func(units float64) int{
	// Dense HDD: three disks per xlarge (d3), two (d3en).
	"d3":   func(u float64) int { return min(24, int(math.Ceil(1.5*u))) },
	"d3en": func(u float64) int { return min(24, int(math.Ceil(u))) },
	// Accelerated computing with eight NVMe disks at their (only) size.
	"p4d": func(float64) int { return 8 }, "p4de": func(float64) int { return 8 },
	"p5": func(float64) int { return 8 }, "p5e": func(float64) int { return 8 }, "p5en": func(float64) int { return 8 },
	"trn1": func(u float64) int { return max(1, int(math.Ceil(u/16))) },
}

// sizeUnits is a size in units of "large", the unit instance store and
// vCPUs grow with.
func sizeUnits(size string) float64 {
	switch size {
	case "nano", "micro", "small", "medium":
		return 0.5
	case "large":
		return 1
	case "xlarge":
		return 2
	case "metal":
		return 96
	}
	if n, ok := strings.CutSuffix(size, "xlarge"); ok {
		var f float64
		for _, c := range n {
			if c < '0' || c > '9' {
				return 96
			}
			f = f*10 + float64(c-'0')
		}
		return 2 * f
	}
	if strings.HasPrefix(size, "metal") {
		return 96
	}
	return 96 // unknown sizes: assume the largest, which is conservative
}

// splitType cuts "m5d.2xlarge" into its family "m5d", the family's
// attribute letters after the generation ("d") and the size.
func splitType(t string) (family, attrs, size string) {
	family, size, _ = strings.Cut(t, ".")
	i := strings.IndexFunc(family, func(r rune) bool { return r >= '0' && r <= '9' })
	if i >= 0 {
		attrs = strings.TrimLeft(family[i:], "0123456789")
		if j := strings.Index(attrs, "-"); j >= 0 {
			attrs = attrs[:j]
		}
	}
	return family, attrs, size
}

// instanceStoreDisks estimates the NVMe instance store volumes of a type,
// rounding up where sizes differ between families.
func instanceStoreDisks(t string) int {
	family, attrs, size := splitType(t)
	u := sizeUnits(size)
	if f, ok := storeDisks[family]; ok {
		return f(u)
	}
	prefix := strings.TrimRight(family[:len(family)-len(attrs)], "0123456789")
	switch {
	case prefix == "i" || prefix == "im" || prefix == "is":
		// Storage optimised: about one disk per 3xlarge, at least two.
		return max(2, min(16, int(math.Ceil(u/6))+1))
	case strings.Contains(attrs, "d"):
		// General purpose and compute with local disks (m5d, c6id, r7gd,
		// g4dn, x2idn, z1d...): one up to 4xlarge, two up to 12xlarge,
		// four above.
		switch {
		case u <= 8:
			return 1
		case u <= 24:
			return 2
		}
		return 4
	}
	return 0
}

// AttachLimit is how many more EBS volumes an instance of the given type
// can take: the type's slots less its network interfaces (enis, 1 when
// unknown), its instance store disks and the reserved EBS volumes
// already there (the root volume at least). It is never below 1, which
// Kubernetes would read as "no limit".
func AttachLimit(instanceType string, enis, reserved int) int {
	enis = max(enis, 1)
	reserved = max(reserved, 1)
	family, _, _ := splitType(instanceType)
	var n int
	if xenFamilies[family] && !strings.HasSuffix(instanceType, ".metal") {
		n = xenVolumeLimit - reserved
	} else {
		n = nitroSharedSlots - enis - instanceStoreDisks(instanceType) - reserved
	}
	return max(n, 1)
}
