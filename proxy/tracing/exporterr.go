package tracing

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// permanent says whether err means the collector (or the local encoder)
// refuses the data itself, so that sending the same batch again can never
// succeed: the queue then splits the batch instead of retrying it. Anything
// else (collector away, overloaded, timing out) is transient and retried.
//
// The OTLP exporters wrap their errors ("traces export: ..."): the gRPC
// client keeps the status, found through the wrapping by status.FromError;
// the HTTP client keeps only text, so its status is read from the text.
func permanent(err error) bool {
	if st, ok := status.FromError(err); ok {
		msg := st.Message()
		switch st.Code() {
		case codes.InvalidArgument:
			return true
		case codes.ResourceExhausted:
			// Also sent when the collector is out of memory (retry then);
			// only a message over the receive limit is permanent.
			return strings.Contains(msg, "larger than max") || strings.Contains(msg, "too large")
		case codes.Internal:
			// grpc's codec failing on this data: locally (marshaling) or
			// at the collector (unmarshalling a string that is not UTF-8).
			return strings.Contains(msg, "marshaling") || strings.Contains(msg, "unmarshal")
		}
		return false
	}
	msg := err.Error()
	for _, local := range []string{
		"failed to marshal request body", // otlptracehttp's encoder
		"request body too large",         // otlptracehttp's size limit
		"request message too large",      // otlptracegrpc's size limit
		"string field contains invalid UTF-8",
	} {
		if strings.Contains(msg, local) {
			return true
		}
	}
	// otlptracehttp: "failed to send to URL: 400 Bad Request (body: ...)".
	// 400 is a request the collector could not decode, 413 one over its
	// limit; other statuses are either retried by the client (429, 502,
	// 503, 504) or worth retrying here (a collector answering 500 today
	// may not tomorrow).
	const sent = "failed to send to "
	if i := strings.Index(msg, sent); i >= 0 {
		rest := msg[i+len(sent):]
		if j := strings.Index(rest, ": "); j >= 0 {
			code := rest[j+2:]
			return strings.HasPrefix(code, "400 ") || strings.HasPrefix(code, "413 ")
		}
	}
	return false
}

// partialSuccessOnly says whether err reports nothing but an OTLP partial
// success: the collector took the batch and said it rejected part of it.
// The exporters return it as an error; the batch must not be sent again.
func partialSuccessOnly(err error) bool {
	// A walk of the whole tree: errors.As finds one match, this needs
	// every leaf to be a partial success.
	switch e := err.(type) { //nolint:errorlint // unwraps by hand, below
	case nil:
		return true
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if !partialSuccessOnly(inner) {
				return false
			}
		}
		return true
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return partialSuccessOnly(inner)
		}
	}
	// The exporters' PartialSuccess type is internal; its text is stable.
	return strings.HasPrefix(err.Error(), "OTLP partial success:")
}
