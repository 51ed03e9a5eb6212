// Package apierror is the one error type Loom shows a client: it renders as
// OpenAI's error JSON ({"error":{"message","type","param","code"}}) with the
// HTTP status an OpenAI SDK maps to its typed errors. Messages must never
// contain a client key or an upstream credential.
package apierror

import (
	"strconv"

	"github.com/loom-gateway/loom/proxy/internal/json"
)

// Error types, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeServer         = "server_error"
)

// Error is an error Loom itself answers with.
type Error struct {
	Status  int
	Message string
	Type    string
	Param   string // "" renders as null
	Code    string // "" renders as null
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
}

func (e *Error) Error() string {
	return strconv.Itoa(e.Status) + " " + e.Type + ": " + e.Message
}

// AppendJSON appends the OpenAI-shaped body to dst.
func (e *Error) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = json.AppendQuote(dst, e.Message)
	dst = append(dst, `,"type":`...)
	dst = json.AppendQuote(dst, e.Type)
	dst = append(dst, `,"param":`...)
	dst = appendNullable(dst, e.Param)
	dst = append(dst, `,"code":`...)
	dst = appendNullable(dst, e.Code)
	return append(dst, "}}"...)
}

func appendNullable(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return json.AppendQuote(dst, s)
}

// New builds an error.
func New(status int, typ, code, param, message string) *Error {
	return &Error{Status: status, Type: typ, Code: code, Param: param, Message: message}
}

// BadRequest is a 400 invalid_request_error about param.
func BadRequest(code, param, message string) *Error {
	return New(400, TypeInvalidRequest, code, param, message)
}
