package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/loom-gateway/loom/dashboards/grafana"
)

func TestMain_WritesEveryDashboard(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if err := Main(t.Context(), []string{"-out", dir}, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, name := range grafana.Names() {
		got, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("..", "..", "grafana", "json", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			t.Errorf("%s differs from the committed file: run `make dashboards`", name)
		}
	}
}

func TestMain_BadFlag_Fails(t *testing.T) {
	if err := Main(t.Context(), []string{"-nope"}, &bytes.Buffer{}); err == nil {
		t.Error("an unknown flag did not fail")
	}
}
