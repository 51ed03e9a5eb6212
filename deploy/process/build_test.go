package process

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild_NamesEachBinaryAfterItsPackage(t *testing.T) {
	dir := t.TempDir()
	if err := Build(dir, "github.com/loom-gateway/loom/bench/cmd/mockupstream"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "mockupstream")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("no executable mockupstream in %s: %v", dir, err)
	}
}

func TestBuild_BrokenPackage_ErrorNamesItWithTheCompilerOutput(t *testing.T) {
	err := Build(t.TempDir(), "github.com/loom-gateway/loom/no/such/package")
	if err == nil || !strings.Contains(err.Error(), "no/such/package") {
		t.Fatalf("Build = %v, want an error naming the package", err)
	}
}

type fakeM struct{ ran bool }

func (m *fakeM) Run() int { m.ran = true; return 3 }

func TestRunWithBinaries_HandsTheDirectoryThenRemovesIt(t *testing.T) {
	var m fakeM
	var dir string
	code := RunWithBinaries(&m, func(d string) { dir = d }, "github.com/loom-gateway/loom/bench/cmd/mockupstream")
	if code != 3 || !m.ran || dir == "" {
		t.Fatalf("code %d, ran %v, dir %q", code, m.ran, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after the tests: %v", dir, err)
	}
}
