package devstack

import (
	"slices"
	"testing"
)

// loom serve never migrates unless told: the stack tells it, so that a
// fresh machine's `make run` never starts loom (and its console) on a
// database without the schema, whichever service reaches it first.
func TestPrepare_LoomMigratesItsDatabaseAtStart(t *testing.T) {
	p, err := Prepare(Options{Dir: t.TempDir(), Bin: fakeBin(t), Listen: "127.0.0.1:0", MockAddr: "127.0.0.1:0",
		OTLPAddr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0",
		Getenv: func(k string) string { return map[string]string{EnvDatabaseURL: "postgres://db.example.com/loom"}[k] }})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(p.Services, func(s Service) bool { return s.Name == "loom" })
	if i < 0 {
		t.Fatalf("no loom service in %+v", p.Services)
	}
	if args := p.Services[i].Args; len(args) == 0 || args[0] != "serve" || !slices.Contains(args, "-migrate") {
		t.Errorf("loom's command line %v: want serve -migrate", args)
	}
}
