package messages

import (
	"github.com/loom-gateway/loom/proxy/apierror"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Anthropic's error types, as its API names them in
// {"type":"error","error":{"type":...,"message":...}}.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypeBilling        = "billing_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeTooLarge       = "request_too_large"
	TypeRateLimit      = "rate_limit_error"
	TypeTimeout        = "timeout_error"
	TypeAPI            = "api_error"
	TypeOverloaded     = "overloaded_error"
)

// StatusOverloaded is the status Anthropic answers with when it is
// overloaded; its SDKs and Claude Code treat it as "retry later".
const StatusOverloaded = 529

// maxErrorMessage bounds a message copied from an upstream error body: the
// body is untrusted and only its gist is worth relaying.
const maxErrorMessage = 4 << 10

// TypeForStatus is the Anthropic error type of an HTTP status, as Anthropic
// pairs them (400 invalid_request_error, 401 authentication_error, 402
// billing_error, 403 permission_error, 404 not_found_error, 413
// request_too_large, 429 rate_limit_error, 504 timeout_error, 529
// overloaded_error, other 5xx api_error). Other 4xx are invalid requests.
func TypeForStatus(status int) string {
	switch status {
	case 401:
		return TypeAuthentication
	case 402:
		return TypeBilling
	case 403:
		return TypePermission
	case 404:
		return TypeNotFound
	case 413:
		return TypeTooLarge
	case 429:
		return TypeRateLimit
	case 408, 504:
		return TypeTimeout
	case 503, StatusOverloaded:
		return TypeOverloaded
	}
	if status >= 500 || status < 400 {
		return TypeAPI
	}
	return TypeInvalidRequest
}

// AppendError appends Anthropic's error body to dst:
// {"type":"error","error":{"type":errType,"message":message}}. An empty
// errType is derived from status (TypeForStatus). message is quoted as
// valid UTF-8 whatever it holds.
func AppendError(dst []byte, status int, errType, message string) []byte {
	if errType == "" {
		errType = TypeForStatus(status)
	}
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = json.AppendQuote(dst, errType)
	dst = append(dst, `,"message":`...)
	dst = json.AppendQuote(dst, message)
	return append(dst, "}}"...)
}

// ErrorFromAPIError renders one of Loom's own errors (authentication,
// limits, routing, validation) in Anthropic's shape, with the status an
// Anthropic SDK expects. Retry-After stays the caller's to send.
func ErrorFromAPIError(dst []byte, e *apierror.Error) (int, []byte) {
	status := anthropicStatus(e.Status, e.Code)
	return status, AppendError(dst, status, errorType(status, e.Code), e.Message)
}

// ErrorFromOpenAI converts an OpenAI-shaped error body (an upstream's, or
// Loom's own apierror JSON) answered with status into Anthropic's shape. It
// returns the status to answer with and dst with the body appended. The
// status is kept, except that 503 (OpenAI's "overloaded") becomes 529,
// Anthropic's overloaded_error, and insufficient_quota becomes 402
// billing_error (a 429 there would be retried for ever). A body that is not
// OpenAI's shape still yields a well-formed error with a message from the
// status.
func ErrorFromOpenAI(dst []byte, status int, openaiBody []byte) (int, []byte) {
	msg, code := openAIError(openaiBody)
	status = anthropicStatus(status, string(code))
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = json.AppendQuote(dst, errorType(status, string(code)))
	dst = append(dst, `,"message":`...)
	if msg != nil {
		dst = appendCleanString(dst, msg, maxErrorMessage)
	} else {
		dst = json.AppendQuote(dst, defaultMessage(status))
	}
	return status, append(dst, "}}"...)
}

func anthropicStatus(status int, code string) int {
	switch {
	case code == "insufficient_quota":
		return 402
	case status == 503:
		return StatusOverloaded
	case status < 400 || status > 599:
		// A non-error status with an error body (or a made-up one) is the
		// upstream misbehaving.
		return 502
	}
	return status
}

func errorType(status int, code string) string {
	if code == "insufficient_quota" {
		return TypeBilling
	}
	return TypeForStatus(status)
}

func defaultMessage(status int) string {
	switch TypeForStatus(status) {
	case TypeAuthentication:
		return "authentication failed"
	case TypePermission:
		return "permission denied"
	case TypeNotFound:
		return "not found"
	case TypeTooLarge:
		return "request too large"
	case TypeRateLimit:
		return "rate limited"
	case TypeTimeout:
		return "the upstream timed out"
	case TypeOverloaded:
		return "the upstream is overloaded"
	case TypeInvalidRequest:
		return "invalid request"
	}
	return "the upstream failed"
}

// openAIError finds error.message (quoted, as sent) and error.code (decoded
// enough to compare: only plain codes matter) in an OpenAI error body. Azure
// and some compatible servers send a bare {"message":...} or a string
// error; both are read too.
func openAIError(body []byte) (msg, code []byte) {
	var m json.Members
	if !m.Reset(body) {
		return nil, nil
	}
	for m.Next() {
		switch string(m.Key()) {
		case "error":
			switch m.Kind() {
			case json.Object:
				var e json.Members
				e.Reset(m.Value())
				for e.Next() {
					switch string(e.Key()) {
					case "message":
						if e.Kind() == json.String {
							msg = e.Value()
						}
					case "code", "type":
						if e.Kind() == json.String && (code == nil || string(e.Key()) == "code") {
							code = e.Value()[1 : len(e.Value())-1]
						}
					}
				}
			case json.String:
				msg = m.Value()
			}
		case "message":
			if msg == nil && m.Kind() == json.String {
				msg = m.Value()
			}
		}
	}
	return msg, code
}
