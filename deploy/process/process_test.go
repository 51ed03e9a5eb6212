package process

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The test binary plays the supervised program: with PROCESS_TEST_MODE set,
// TestMain runs that mode instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCESS_TEST_MODE") {
	case "":
		os.Exit(m.Run())
	case "serve": // exits 0 on SIGTERM (the default action would not)
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		os.Exit(0)
	case "stubborn": // ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Hour)
	case "exit3":
		os.Exit(3)
	}
}

// start runs the test binary in mode and, for a mode that handles
// SIGTERM, returns once its handler is in place (it says "ready").
func start(t *testing.T, mode string) *Process {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROCESS_TEST_MODE="+mode)
	cmd.Stdout = w
	p, err := Start(cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if mode != "exit3" {
		if line, err := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
			t.Fatalf("%s: read %q, %v; want ready", mode, line, err)
		}
	}
	return p
}

func TestStop_ProgramExitsOnSIGTERM_NoKill(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	p := start(t, "serve")
	if err := p.Stop(Grace); err != nil {
		t.Fatalf("Stop = %v, want a clean stop", err)
	}
	if !p.Exited() {
		t.Fatal("Stop returned with the program running")
	}
}

func TestStop_ProgramIgnoresSIGTERM_KilledAfterGrace(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	p := start(t, "stubborn")
	err := p.Stop(300 * time.Millisecond)
	if !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop = %v, want ErrKilled", err)
	}
	if !p.Exited() {
		t.Fatal("Stop returned with the program running")
	}
}

func TestWait_ReturnsTheExitStatus_StopThenDoesNothing(t *testing.T) {
	p := start(t, "exit3")
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if err := p.Stop(time.Millisecond); err != nil {
		t.Errorf("Stop after exit = %v, want nil", err)
	}
}
