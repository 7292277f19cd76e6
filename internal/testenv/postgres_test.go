package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A PostgreSQL of the test's own answers on its socket, and is gone when the test ends.
func TestPostgres(t *testing.T) {
	var dsn string
	t.Run("serve", func(t *testing.T) {
		dsn = Postgres(t)
		psql := filepath.Join(postgresBin(t), "psql")
		out, err := exec.Command(psql, "-At", dsn, "-c", "select 40 + 2").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "42" {
			t.Fatalf("psql %s: %v %s", dsn, err, out)
		}
	})
	if dsn == "" {
		return // skipped
	}
	host := strings.TrimPrefix(strings.Fields(dsn)[0], "host=")
	if _, err := os.Stat(host); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there: %v", host, err)
	}
}
