package aci

import (
	"encoding/json"
	"testing"
)

// FuzzParseManifest: the manifest parser must never panic, and what it accepts must survive
// a round trip through the appc schema.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","dependencies":[{"imageName":"example.com/base","labels":[{"name":"version","value":"1"}]}]}`))
	f.Add([]byte(`{"acKind":"PodManifest","acVersion":"0.8.11","name":"example.com/x"}`))
	f.Add([]byte(`{"acKind":"ImageManifest"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		m2, err := ParseManifest(b)
		if err != nil || m2.Name != m.Name {
			t.Fatalf("round trip of %q: %v", m.Name, err)
		}
	})
}
