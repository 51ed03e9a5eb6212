package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/loom-gateway/loom/proxy/apierror"
)

// Parse and authenticate return error; the HTTP boundary finds the
// OpenAI-shaped error inside, wrapped or not, and never shows a client an
// error text that was not written for one.
func TestClientError_FindsTheAPIErrorInside_ElseAnswers500(t *testing.T) {
	bad := apierror.BadRequest("invalid_type", "model", "nope")
	if got := clientError(bad); got != bad {
		t.Fatalf("clientError(%v) = %v, want the error itself", bad, got)
	}
	if got := clientError(fmt.Errorf("parse: %w", bad)); got != bad {
		t.Fatalf("wrapped: clientError = %v, want the wrapped error", got)
	}
	got := clientError(errors.New("secret internals"))
	if got.Status != 500 || got.Type != apierror.TypeServer || got.Message == "secret internals" {
		t.Fatalf("plain error answered as %+v, want a 500 server_error that hides its text", got)
	}
}
