package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/deploy/pgserver"
)

func TestDBName_IsAUniqueIdentifier(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	for _, test := range []string{"TestX", "TestLong/" + strings.Repeat("sub test ", 20), "Test/é"} {
		a, b := dbName(test), dbName(test)
		if !ident.MatchString(a) || a == b {
			t.Errorf("dbName(%q) = %q then %q; want distinct identifiers", test, a, b)
		}
	}
}

func TestDatabase_SharedServer_SeparateDatabases(t *testing.T) {
	srv := Start(t)
	a, b := Database(t, srv), Database(t, srv)
	psql := func(url, sql string) (string, error) {
		bin, err := pgserver.FindBin("psql")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := psql(a, "CREATE TABLE only_in_a (v int)"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := psql(b, "SELECT * FROM only_in_a"); err == nil {
		t.Errorf("database b sees a's table: %s", out)
	}
}

// BenchmarkStartStop is what a test pays for a server of its own: Start
// copies a template; StartWith on a new directory runs initdb.
func BenchmarkStartStop(b *testing.B) {
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		init func(dir string) error
	}{
		{"template", copyTemplate},
		{"initdb", func(string) error { return nil }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			base := TempDir(b)
			i := 0
			for b.Loop() {
				i++
				dir := filepath.Join(base, strconv.Itoa(i))
				if err := bm.init(dir); err != nil {
					b.Fatal(err)
				}
				srv, err := pgserver.Start(ctx, pgserver.Options{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(dir)
			}
		})
	}
}
