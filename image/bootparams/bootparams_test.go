package bootparams

import (
	"errors"
	"strings"
	"testing"
)

var good = Params{
	USRPartUUID: "7130C94A-213A-4E5A-8E26-6CCE9662F132",
	RootHash:    strings.Repeat("ab", 32),
	DataBlocks:  12345,
	Salt:        "00ff",
	Slot:        "A",
}

func TestRoundTrip(t *testing.T) {
	line := "console=ttyS0 " + good.Cmdline() + " quiet"
	p, err := Parse(line)
	if err != nil || p != good {
		t.Fatalf("Parse(%q) = %+v, %v", line, p, err)
	}
	if p.HashOffset() != 12345*4096 {
		t.Fatal(p.HashOffset())
	}
	f := good
	f.USRPartUUID, f.USRFile = "", "/usr.img"
	if p, err := Parse(f.Cmdline()); err != nil || p != f {
		t.Fatalf("file form: %+v %v", p, err)
	}
	a := good
	a.USRPartUUID, a.USRAuto = "", true
	if p, err := Parse(a.Cmdline()); err != nil || p != a {
		t.Fatalf("auto form: %+v %v", p, err)
	}
}

func TestRefuses(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, line := range []string{
		"",
		"console=ttyS0",
		"cairn.usr=PARTUUID=7130C94A-213A-4E5A-8E26-6CCE9662F132 cairn.usrhash=" + h,        // no cairn.verity
		"cairn.usr=/dev/vda3 cairn.usrhash=" + h + " cairn.verity=1,",                       // not a GUID
		"cairn.usr=PARTUUID=nope cairn.usrhash=" + h + " cairn.verity=1,",                   // bad GUID
		"cairn.usr=file:../x cairn.usrhash=" + h + " cairn.verity=1,",                       // relative
		"cairn.usr=file:/x cairn.usrhash=abc cairn.verity=1,",                               // short hash
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=0,",                         // no blocks
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=-5,00",                      // negative
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=5,0",                        // odd salt
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=5,zz",                       // not hex
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=5",                          // no salt field
		"cairn.usr=file:/x cairn.usrhash=" + h + " cairn.verity=5,00 cairn.slot=C",          // bad slot
		"cairn.usr=file:/x cairn.usrhash=" + strings.Repeat("g", 64) + " cairn.verity=5,00", // not hex
	} {
		if _, err := Parse(line); err == nil {
			t.Errorf("accepted %q", line)
		}
	}
	if _, err := Parse("console=ttyS0"); !errors.Is(err, ErrMissing) {
		t.Errorf("want ErrMissing, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good.Cmdline())
	f.Add("cairn.usr=file:/usr.img cairn.usrhash=" + strings.Repeat("0", 64) + " cairn.verity=1,")
	f.Add("cairn.verity=,, cairn.usr=PARTUUID=")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must format back to the same parameters.
		q, err := Parse(p.Cmdline())
		if err != nil || q != p {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, p, p.Cmdline(), q, err)
		}
	})
}
