package faults_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loom-gateway/loom/deploy/process"
)

const (
	envFaults = "LOOM_FAULTS" // full or short: run TestFaults with that profile
	envSoak   = "LOOM_SOAK"   // a duration: run TestSoak that long
)

// profile sizes a run of the suite. Both run every fault of the schedule;
// short is what CI affords on a 2-core machine, full what the issue asks.
type profile struct {
	name  string
	calls int
	rate  float64 // calls per second the clients aim at
	conns int     // concurrent clients
	down  time.Duration
}

var profiles = map[string]profile{
	"full":  {name: "full", calls: 100_000, rate: 500, conns: 48, down: 3 * time.Second},
	"short": {name: "short", calls: 10_000, rate: 100, conns: 16, down: 2 * time.Second},
}

// chosenProfile is LOOM_FAULTS's profile, with LOOM_FAULTS_CALLS and
// LOOM_FAULTS_RATE overriding its size (for trying the suite out small).
func chosenProfile(t *testing.T) profile {
	name := os.Getenv(envFaults)
	if name == "" {
		t.Skipf("the fault suite runs real processes for minutes: set %s=full or %s=short (make test-faults)", envFaults, envFaults)
	}
	p, ok := profiles[name]
	if !ok {
		t.Fatalf("%s=%q: want full or short", envFaults, name)
	}
	if v := os.Getenv("LOOM_FAULTS_CALLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("LOOM_FAULTS_CALLS=%q: want an integer of at least 100", v)
		}
		p.calls = n
	}
	if v := os.Getenv("LOOM_FAULTS_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("LOOM_FAULTS_RATE=%q: want a positive number of calls per second", v)
		}
		p.rate = r
	}
	return p
}

// fault is one step of the schedule.
type fault struct {
	what string
	do   func(ctx context.Context, r *faultRun) (string, error)
}

// happened is a fault as it ran, for the report.
type happened struct {
	what, detail string
	at, took     time.Duration // since the load started
	err          error
}

// faultRun is the state the schedule shares with the checks.
type faultRun struct {
	st    *stack
	p     profile
	began time.Time
	mu    sync.Mutex
	kills []time.Time // each SIGKILL of Loom
}

func (r *faultRun) killLoom() {
	r.mu.Lock()
	r.kills = append(r.kills, time.Now())
	r.mu.Unlock()
	r.st.loom.kill()
}

func (r *faultRun) restartLoomGracefully(ctx context.Context) (string, error) {
	t0 := time.Now()
	if err := r.st.loom.stop(process.Grace); err != nil {
		return "", err
	}
	stopped := time.Since(t0)
	if err := r.st.loom.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("SIGTERM to exit %v, down %v", stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond)), nil
}

func (r *faultRun) killCollector(ctx context.Context, during func() (string, error)) (string, error) {
	t0 := time.Now()
	r.st.collector.kill()
	time.Sleep(r.p.down)
	detail := ""
	if during != nil {
		var err error
		if detail, err = during(); err != nil {
			return "", err
		}
		detail = "; " + detail
	}
	if err := r.st.collector.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("down %v%s", time.Since(t0).Round(time.Millisecond), detail), nil
}

// schedule is the list: the collector SIGKILLed 3 times, Postgres
// restarted 3 times, Loom restarted gracefully twice and SIGKILLed twice,
// once with everything up and once while the collector is down.
func schedule() []fault {
	collector := fault{"collector SIGKILL, restart", func(ctx context.Context, r *faultRun) (string, error) {
		return r.killCollector(ctx, nil)
	}}
	postgres := fault{"postgres stop, restart", func(ctx context.Context, r *faultRun) (string, error) {
		t0 := time.Now()
		if err := r.st.restartPostgres(ctx, r.p.down); err != nil {
			return "", err
		}
		return fmt.Sprintf("down %v", time.Since(t0).Round(time.Millisecond)), nil
	}}
	graceful := fault{"loom SIGTERM, restart", func(ctx context.Context, r *faultRun) (string, error) {
		return r.restartLoomGracefully(ctx)
	}}
	kill := fault{"loom SIGKILL, restart", func(ctx context.Context, r *faultRun) (string, error) {
		t0 := time.Now()
		r.killLoom()
		if err := r.st.loom.start(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("down %v", time.Since(t0).Round(time.Millisecond)), nil
	}}
	killWhileCollectorDown := fault{"collector SIGKILL; loom SIGKILL while it is down", func(ctx context.Context, r *faultRun) (string, error) {
		return r.killCollector(ctx, func() (string, error) {
			t0 := time.Now()
			r.killLoom()
			if err := r.st.loom.start(ctx); err != nil {
				return "", err
			}
			// Calls go on through the new run, still without a collector.
			time.Sleep(r.p.down)
			return fmt.Sprintf("loom down %v", time.Since(t0).Round(time.Millisecond)), nil
		})
	}}
	return []fault{collector, postgres, graceful, collector, kill, postgres, killWhileCollectorDown, graceful, postgres}
}

// TestFaults is the fault suite: mixed calls from two tenants through the
// real stack while the schedule kills and restarts its parts; then every
// answered call must be stored exactly once, but for what a SIGKILL's
// commit window may lose, and the audit must account for every run.
func TestFaults(t *testing.T) {
	p := chosenProfile(t)
	st := startStack(t, stackOptions{})
	r := &faultRun{st: st, p: p}
	c := newClient(st, p.conns)
	defer c.close()

	outcomes := make([]outcome, p.calls)
	var sent atomic.Int64
	faults := schedule()
	var history []happened
	r.began = time.Now()
	loadDone := make(chan struct{})
	scheduleDone := make(chan struct{})
	go func() {
		defer close(scheduleDone)
		for i, f := range faults {
			at := int64(p.calls) * int64(i+1) / int64(len(faults)+1)
			for sent.Load() < at {
				select {
				case <-loadDone:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			t0 := time.Now()
			detail, err := f.do(t.Context(), r)
			history = append(history, happened{what: f.what, detail: detail, at: t0.Sub(r.began), took: time.Since(t0), err: err})
			if err != nil {
				return
			}
		}
	}()
	go progress(t, &sent, outcomes, loadDone)
	var wg sync.WaitGroup
	for range p.conns {
		wg.Go(func() {
			for {
				n := int(sent.Add(1)) - 1
				if n >= p.calls {
					return
				}
				// Paced, so the schedule spreads over the run: call n is not
				// sent before its time (and is sent late if the stack lags).
				time.Sleep(time.Until(r.began.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))))
				outcomes[n] = c.do(t.Context(), n)
			}
		})
	}
	wg.Wait()
	close(loadDone)
	<-scheduleDone
	loadTook := time.Since(r.began)
	for _, h := range history {
		if h.err != nil {
			t.Fatalf("fault %q at %v: %v", h.what, h.at, h.err)
		}
	}
	if len(history) != len(faults) {
		t.Errorf("only %d of %d faults ran before the calls ended: the profile is too short for the schedule", len(history), len(faults))
	}
	// The last run ends cleanly, so it must close.
	if err := st.loom.stop(process.Grace); err != nil {
		t.Errorf("final stop: %v", err)
	}
	rep := &report{profile: p, faults: history, loadTook: loadTook, lives: st.loom.history()}
	defer func() { t.Log("\n" + rep.String()) }()

	db := connect(t, st.dbURL)
	settleTook, err := settle(t.Context(), db, 3*time.Minute)
	rep.settleTook = settleTook
	if err != nil {
		t.Fatal(err)
	}
	rep.audit, rep.auditErr = auditCompleteness(t.Context(), st.dbURL)
	checkCalls(t, r, outcomes, storedRows(t, db), rep)
	checkNoDuplicates(t, db, rep)
	checkRuns(t, r, st, outcomes, mockLog(t, st), rep)
}

// progress logs the run's progress every 15 s, for whoever watches a
// long profile.
func progress(t *testing.T, sent *atomic.Int64, outcomes []outcome, done <-chan struct{}) {
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			t.Logf("progress: %d of %d calls sent", min(sent.Load(), int64(len(outcomes))), len(outcomes))
		}
	}
}

// report is the table of faults and outcomes the suite prints at the end.
type report struct {
	profile    profile
	faults     []happened
	lives      []life
	loadTook   time.Duration
	settleTook time.Duration
	states     [len(stateNames)]int
	stored     int             // calls with their SERVER row
	expected   int             // answered or aborted: must be stored
	missing    int             // expected but not stored, outside any crash window
	exempt     []int           // per SIGKILL: answered calls lost in the tail it took
	exemptMax  []time.Duration // per SIGKILL: how long before it the earliest of them ended
	duplicates int
	noClient   int
	cutOutside int // answers broken off while no SIGKILL happened
	runs       []runRow
	audit      []auditRun
	auditErr   error
}

// runRow is one run of Loom as the audit and the mock saw it.
type runRow struct {
	life   life
	audit  *auditRun
	mock   int // distinct calls that reached the mock during the run
	answer int // calls the client saw answered while the run was up
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault suite, profile %s: %d calls at %.0f/s from %d clients; load %v, settle %v\n\n",
		r.profile.name, r.profile.calls, r.profile.rate, r.profile.conns, r.loadTook.Round(time.Second), r.settleTook.Round(time.Second))
	fmt.Fprintf(&b, "%-3s %-52s %9s %9s  %s\n", "#", "fault", "at", "took", "detail")
	for i, f := range r.faults {
		fmt.Fprintf(&b, "%-3d %-52s %9v %9v  %s\n", i+1, f.what, f.at.Round(time.Millisecond), f.took.Round(time.Millisecond), f.detail)
	}
	b.WriteString("\ncalls: ")
	for s, n := range r.states {
		if s != int(notSent) || n > 0 {
			fmt.Fprintf(&b, "%s %d, ", stateNames[s], n)
		}
	}
	fmt.Fprintf(&b, "\nanswered or aborted (must be stored) %d, stored %d, missing outside the tails SIGKILLs took %d, duplicates %d, SERVER rows without CLIENT %d, broken off outside a SIGKILL %d\n",
		r.expected, r.stored, r.missing, r.duplicates, r.noClient, r.cutOutside)
	for i, n := range r.exempt {
		fmt.Fprintf(&b, "SIGKILL %d: lost the tail of its answers, %d calls, the earliest answered %v before the kill\n", i+1, n, r.exemptMax[i].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "\n%-3s %-10s %-10s %9s %9s %9s %6s %7s %6s %10s %9s %9s\n", "run", "ended by", "run id", "numbered", "stored", "gaps", "closed", "crashed", "bound", "mock saw", "answered", "uptime")
	for i, row := range r.runs {
		end := row.life.end
		if end.IsZero() {
			end = time.Now()
		}
		if a := row.audit; a != nil {
			fmt.Fprintf(&b, "%-3d %-10s %-10.10s %9d %9d %9d %6v %7v %6d %10d %9d %9v\n", i+1, row.life.ended, a.RunID, a.Numbered, a.Stored, a.Gaps,
				a.Closed, a.crashed(), a.LossBound, row.mock, row.answer, end.Sub(row.life.start).Round(time.Millisecond))
		} else {
			fmt.Fprintf(&b, "%-3d %-10s %-10s %9s %9s %9s %6s %7s %6s %10d %9d %9v\n", i+1, row.life.ended, "?", "?", "?", "?", "?", "?", "?",
				row.mock, row.answer, end.Sub(row.life.start).Round(time.Millisecond))
		}
	}
	if r.auditErr != nil {
		fmt.Fprintf(&b, "audit: %v\n", r.auditErr)
	} else if len(r.audit) != len(r.runs) {
		fmt.Fprintf(&b, "the audit's %d runs do not pair with Loom's %d starts; as it reports them:\n", len(r.audit), len(r.runs))
		for _, a := range r.audit {
			fmt.Fprintf(&b, "  instance %s run %q started %s: numbered %d, stored %d, gaps %d, closed %v, loss bound %d\n",
				a.InstanceID, a.RunID, a.StartedAt.UTC().Format(time.RFC3339Nano), a.Numbered, a.Stored, a.Gaps, a.Closed, a.LossBound)
		}
	}
	return b.String()
}
