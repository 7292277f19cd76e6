package payload

import (
	"strconv"
	"strings"
)

// CompareVersions orders Container Linux-style versions ("3815.2.0", "1.2.3-rc1"): dotted
// numeric components compare as numbers, a missing component counts as 0, and a pre-release
// suffix after '-' sorts before the release it precedes. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	an, apre, _ := strings.Cut(strings.SplitN(a, "+", 2)[0], "-")
	bn, bpre, _ := strings.Cut(strings.SplitN(b, "+", 2)[0], "-")
	as, bs := strings.Split(an, "."), strings.Split(bn, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := compareComponent(x, y); c != 0 {
			return c
		}
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	case apre < bpre:
		return -1
	}
	return 1
}

func compareComponent(x, y string) int {
	xi, xerr := strconv.ParseUint(orZero(x), 10, 64)
	yi, yerr := strconv.ParseUint(orZero(y), 10, 64)
	if xerr == nil && yerr == nil {
		switch {
		case xi < yi:
			return -1
		case xi > yi:
			return 1
		}
		return 0
	}
	return strings.Compare(x, y)
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
