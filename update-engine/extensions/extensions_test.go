package extensions

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var (
	hashA = strings.Repeat("a", 64)
	hashB = strings.Repeat("b", 64)
)

func img(name, hash string) Image {
	return Image{Name: name, URL: "http://u/" + name + ".raw", Size: 1, SHA256: strings.Repeat("0", 64), USRHash: hash}
}

func TestPlan(t *testing.T) {
	k := "kubernetes-v1.37.2"
	for _, tc := range []struct {
		name    string
		state   State
		images  []Image
		want    []Op
		wantErr error
	}{
		{"nothing activated, nothing to do",
			State{}, []Image{img(k, hashB)}, nil, nil},
		{"activated in /etc: adopted into the running version, fetched for the next",
			State{Etc: []string{k}}, []Image{img(k, hashB)},
			[]Op{{Kind: Adopt, Name: k, Version: "1.0.0"}, {Kind: Fetch, Name: k, Version: "1.1.0", Image: img(k, hashB)}}, nil},
		{"already in the store: fetched for the next",
			State{Store: map[string]map[string]string{"1.0.0": {k: hashA}}}, []Image{img(k, hashB)},
			[]Op{{Kind: Fetch, Name: k, Version: "1.1.0", Image: img(k, hashB)}}, nil},
		{"staged by an earlier run: nothing to do",
			State{Store: map[string]map[string]string{"1.0.0": {k: hashA}, "1.1.0": {k: hashB}}}, []Image{img(k, hashB)},
			nil, nil},
		{"staged image of another build (or without its hash): fetched again",
			State{Store: map[string]map[string]string{"1.0.0": {k: hashA}, "1.1.0": {k: ""}}}, []Image{img(k, hashB)},
			[]Op{{Kind: Fetch, Name: k, Version: "1.1.0", Image: img(k, hashB)}}, nil},
		{"images of extensions not activated are not fetched",
			State{Etc: []string{k}}, []Image{img(k, hashB), img("debug-tools", hashB)},
			[]Op{{Kind: Adopt, Name: k, Version: "1.0.0"}, {Kind: Fetch, Name: k, Version: "1.1.0", Image: img(k, hashB)}}, nil},
		{"no longer active: dropped from the next version",
			State{Store: map[string]map[string]string{"1.1.0": {k: hashB}}}, []Image{img(k, hashB)},
			[]Op{{Kind: Drop, Name: k, Version: "1.1.0"}}, nil},
		{"a third version's directory is pruned",
			State{Store: map[string]map[string]string{"0.9.0": {k: hashA}, "1.0.0": {k: hashA}}}, []Image{img(k, hashB)},
			[]Op{{Kind: Fetch, Name: k, Version: "1.1.0", Image: img(k, hashB)}, {Kind: Prune, Version: "0.9.0"}}, nil},
		{"activated without an image for the next version",
			State{Etc: []string{k}}, nil, nil, ErrMissing},
		{"described twice",
			State{}, []Image{img(k, hashA), img(k, hashB)}, nil, ErrInvalid},
		{"bad description",
			State{}, []Image{{Name: "../x", URL: "u", Size: 1, SHA256: hashA, USRHash: hashA}}, nil, ErrInvalid},
		{"bad usrhash",
			State{}, []Image{img(k, "xyz")}, nil, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Plan(tc.state, "1.0.0", "1.1.0", tc.images)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || ops != nil {
					t.Fatalf("got %v %v, want %v", ops, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ops, tc.want) {
				t.Errorf("got %v\nwant %v", ops, tc.want)
			}
		})
	}
	if _, err := Plan(State{}, "1.0.0", "1.0.0", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("same version: %v", err)
	}
	if _, err := Plan(State{}, "1.0.0", "../x", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad version: %v", err)
	}
}

func TestUSRPartitionUUID(t *testing.T) {
	h := "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f"
	if got, want := usrPartitionUUID(h), "00112233-4455-6677-8899-AABBCCDDEEFF"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
