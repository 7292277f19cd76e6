package testenv

import (
	"net/http"
	"testing"
)

// Two etcds of one test are separate, and both are gone when the test ends.
func TestEtcd(t *testing.T) {
	var urls []string
	t.Run("two", func(t *testing.T) {
		urls = []string{Etcd(t), Etcd(t)}
		if urls[0] == urls[1] {
			t.Fatalf("both got %s", urls[0])
		}
		for _, u := range urls {
			resp, err := http.Get(u + "/health")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s/health: %s", u, resp.Status)
			}
		}
	})
	if len(urls) != 2 {
		return // skipped
	}
	for _, u := range urls {
		if resp, err := http.Get(u + "/health"); err == nil {
			resp.Body.Close()
			t.Errorf("etcd on %s still answers after its test ended", u)
		}
	}
}
