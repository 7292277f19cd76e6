// Package pull is rkt's --pull-policy: when to go to the network for an image. It is apart
// from package fetch so that what only reads the policy (rkt run's image lookup in the store)
// does not link the fetcher.
package pull

import "fmt"

// Policy says when to go to the network, with rkt's values.
type Policy string

const (
	New    Policy = "new"    // use the stored image when there is one, else fetch
	Update Policy = "update" // always ask the remote (a same-content image is not re-imported)
	Never  Policy = "never"  // only the store
)

// Parse checks a --pull-policy value.
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case New, Update, Never:
		return p, nil
	}
	return "", fmt.Errorf("unknown --pull-policy %q (new, update, never)", s)
}
