package harness

import "testing"

func TestModeOnly_KeepsTheNamedScenariosInOrder_LongStreamsOnlyWhenNamed(t *testing.T) {
	full := Modes["full"]
	m, err := full.Only([]string{"nonstream-2000", " stream-200"})
	if err != nil || len(m.Scenarios) != 2 || m.Scenarios[0].Name != "nonstream-2000" || m.Scenarios[1].Name != "stream-200" ||
		m.Streams != nil || m.Rounds != full.Rounds {
		t.Fatalf("Only = %+v, %v", m, err)
	}
	if m, err := full.Only([]string{LongStreamsScenario}); err != nil || len(m.Scenarios) != 0 || m.Streams == nil {
		t.Fatalf("Only(long-streams) = %+v, %v", m, err)
	}
	if _, err := full.Only([]string{"nonstream-2000", "no-such"}); err == nil {
		t.Fatal("an unknown scenario was accepted")
	}
	if len(full.Scenarios) < 5 || full.Streams == nil {
		t.Fatal("Only changed the mode it was called on")
	}
}
