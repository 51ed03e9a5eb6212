package queries

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestZZDump(t *testing.T) {
	if os.Getenv("ZZ_DUMP") == "" {
		t.Skip()
	}
	to := time.Now().UTC().Truncate(2 * time.Hour).Add(2 * time.Hour)
	var tenant map[string][]string
	if v := os.Getenv("ZZ_TENANT"); v != "" {
		tenant = map[string][]string{"tenant": {v}}
	}
	f, _ := os.Create(os.Getenv("ZZ_DUMP"))
	for _, p := range All() {
		fmt.Fprintf(f, "\\echo %s\n%s;\n", p.ID, Expand(p.SQL, to.Add(-7*24*time.Hour), to, 2*time.Hour, tenant))
	}
	f.Close()
}
