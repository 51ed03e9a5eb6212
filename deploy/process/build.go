package process

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Build compiles the main packages pkgs into dir (go build -o dir/), for
// tests and harnesses that run Loom's real binaries; each binary is named
// after its package's last path element.
func Build(dir string, pkgs ...string) error {
	out, err := exec.Command("go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// RunWithBinaries is the TestMain of a package whose tests run real
// binaries: it builds pkgs into a temporary directory, hands the directory
// to use, runs the tests and removes it. It returns the exit code for
// os.Exit.
func RunWithBinaries(m interface{ Run() int }, use func(dir string), pkgs ...string) int {
	dir, err := os.MkdirTemp("", "loom-test-bin-")
	if err == nil {
		err = Build(dir, pkgs...)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	use(dir)
	return m.Run()
}
