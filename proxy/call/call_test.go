package call

import (
	"testing"
	"unicode/utf8"
)

func TestContent_AppendChoice_CapsAllChoicesTogetherOnRuneBoundaries(t *testing.T) {
	c := Content{Capture: true, Max: 7}
	c.AppendChoice(1, []byte("ab"))
	c.AppendChoice(0, []byte("cd"))
	c.AppendChoice(0, []byte("éé")) // 4 bytes, 3 left: only one é fits
	if string(c.Choices[0]) != "cdé" || string(c.Choices[1]) != "ab" || !c.Truncated {
		t.Fatalf("choices %q truncated %v", c.Choices, c.Truncated)
	}
	for _, ch := range c.Choices {
		if !utf8.Valid(ch) {
			t.Fatalf("cut inside a rune: %q", ch)
		}
	}
	c.AppendChoice(-1, []byte("x"))
	c.AppendChoice(5000, []byte("x"))
	if len(c.Choices) != 2 {
		t.Fatal("out-of-range choice index accepted")
	}
}

func TestRecord_ResetKeepsBuffersButForgetsContent(t *testing.T) {
	var r Record
	r.Content = Content{Capture: true, Max: 100}
	r.Content.AppendChoice(0, []byte("hello"))
	r.Content.Response = append(r.Content.Response, "body"...)
	r.TraceParent = append(r.TraceParent, "00-abc"...)
	c := r.Clone()
	r.Reset()
	if r.Content.Capture || len(r.Content.Choices) != 0 || len(r.Content.Response) != 0 || len(r.TraceParent) != 0 {
		t.Fatalf("reset left %+v", r.Content)
	}
	r.Content.Max = 100
	r.Content.AppendChoice(0, []byte("x"))
	if string(r.Content.Choices[0]) != "x" {
		t.Fatalf("reused choice buffer kept old text: %q", r.Content.Choices[0])
	}
	if string(c.Content.Choices[0]) != "hello" || string(c.Content.Response) != "body" || string(c.TraceParent) != "00-abc" {
		t.Fatal("clone shares buffers with the record")
	}
}

func TestRuneBoundary(t *testing.T) {
	b := []byte("aé") // a, then two bytes
	for n, want := range map[int]int{0: 0, 1: 1, 2: 1, 3: 3, 9: 3} {
		if got := RuneBoundary(b, n); got != want {
			t.Errorf("RuneBoundary(%q, %d) = %d, want %d", b, n, got, want)
		}
	}
}

func TestEstimateTokens_FourBytesATokenRoundedUp(t *testing.T) {
	for _, tt := range []struct {
		bytes int
		want  int64
	}{{0, 0}, {1, 1}, {4, 1}, {5, 2}, {8, 2}, {10, 3}} {
		if got := EstimateTokens(tt.bytes); got != tt.want {
			t.Errorf("EstimateTokens(%d) = %d, want %d", tt.bytes, got, tt.want)
		}
	}
}

// Content and finish reasons keep the same choices: the last index one
// accepts, the other accepts too, and neither takes the next.
func TestRecord_ChoiceIndexCap_SameForContentAndFinishReasons(t *testing.T) {
	var r Record
	r.Content = Content{Capture: true, Max: 1 << 20}
	r.Content.AppendChoice(maxChoiceIndex, []byte("x"))
	r.SetFinishReason(maxChoiceIndex, "stop")
	if len(r.Content.Choices) != maxChoiceIndex+1 || len(r.FinishReasons) != maxChoiceIndex+1 {
		t.Fatalf("index %d: %d choices, %d finish reasons", maxChoiceIndex, len(r.Content.Choices), len(r.FinishReasons))
	}
	r.Content.AppendChoice(maxChoiceIndex+1, []byte("x"))
	r.SetFinishReason(maxChoiceIndex+1, "stop")
	if len(r.Content.Choices) != maxChoiceIndex+1 || len(r.FinishReasons) != maxChoiceIndex+1 {
		t.Fatalf("index %d accepted: %d choices, %d finish reasons", maxChoiceIndex+1, len(r.Content.Choices), len(r.FinishReasons))
	}
}
