// Package common stands in for the tencentcloud SDK's common package, which the module proxy
// refuses at the version stock flannel requires. It has only the helpers flannel's
// tencentvpc backend calls; see tools/README.md.
package common

// StringPtr returns a pointer to s.
func StringPtr(s string) *string { return &s }

// StringPtrs returns pointers to each element of s.
func StringPtrs(s []string) []*string {
	p := make([]*string, len(s))
	for i := range s {
		p[i] = &s[i]
	}
	return p
}

// BoolPtr returns a pointer to b.
func BoolPtr(b bool) *bool { return &b }
