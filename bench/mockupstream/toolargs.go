package mockupstream

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// Tool arguments are generated from the tool's JSON Schema, so an SDK that unmarshals them into the type the
// schema came from, or validates them, gets what a real model would send. The rule: every property the
// schema lists in "required" is present, in that order; optional properties are left out (the smallest
// object that validates). A value follows its schema's const, else its first enum value, else its first
// anyOf/oneOf branch, else its type (the first non-null one of a type array) and bounds. The result is
// deterministic: the same schema always gives the same bytes.
//
// The schema is the client's, so it is untrusted: depth, array lengths, string lengths and the output's
// size are all capped, and a schema that cannot be satisfied within those caps (or is not an object) gives
// "{}" rather than an error, because the mock's job is to answer, not to judge the tool definition.
const (
	argsMaxDepth  = 16   // nesting of objects, arrays and $ref hops together
	argsMaxBytes  = 8192 // the whole arguments object
	argsMaxItems  = 64   // the largest minItems honoured
	argsMaxString = 1024 // the largest minLength honoured
	emptyArgs     = "{}"
)

var (
	errArgsUnsatisfiable = errors.New("tool schema cannot be satisfied within the mock's bounds")
)

// toolArgumentsFor is the arguments object for a tool whose parameters (or input_schema) are schema.
func toolArgumentsFor(schema json.RawMessage) string {
	var root map[string]any
	if len(schema) == 0 || json.Unmarshal(schema, &root) != nil || root == nil {
		return emptyArgs
	}
	g := argsGen{root: root}
	out, err := g.value(nil, root, 0)
	if err != nil || len(out) == 0 || out[0] != '{' {
		return emptyArgs
	}
	return string(out)
}

type argsGen struct{ root map[string]any }

func (g *argsGen) value(dst []byte, schema any, depth int) ([]byte, error) {
	if depth > argsMaxDepth || len(dst) > argsMaxBytes {
		return dst, errArgsUnsatisfiable
	}
	switch s := schema.(type) {
	case bool:
		if !s {
			return dst, errArgsUnsatisfiable
		}
		return append(dst, "null"...), nil
	case map[string]any:
		out, err := g.object(dst, s, depth)
		if err == nil && len(out) > argsMaxBytes {
			err = errArgsUnsatisfiable
		}
		return out, err
	default:
		return dst, errArgsUnsatisfiable
	}
}

func (g *argsGen) object(dst []byte, s map[string]any, depth int) ([]byte, error) {
	if ref, ok := s["$ref"].(string); ok {
		target := g.resolve(ref)
		if target == nil {
			return dst, errArgsUnsatisfiable
		}
		return g.value(dst, target, depth+1)
	}
	if c, ok := s["const"]; ok {
		return appendAny(dst, c)
	}
	if e, ok := s["enum"].([]any); ok {
		if len(e) == 0 {
			return dst, errArgsUnsatisfiable
		}
		return appendAny(dst, e[0])
	}
	for _, k := range [...]string{"anyOf", "oneOf"} {
		if branches, ok := s[k].([]any); ok && len(branches) > 0 {
			return g.value(dst, branches[0], depth+1)
		}
	}
	switch schemaType(s) {
	case "object":
		return g.properties(dst, s, depth)
	case "array":
		return g.array(dst, s, depth)
	case "string":
		return appendString(dst, s)
	case "integer":
		return appendNumber(dst, s, true)
	case "number":
		return appendNumber(dst, s, false)
	case "boolean":
		return append(dst, "true"...), nil
	default: // "null", or a schema that constrains nothing
		return append(dst, "null"...), nil
	}
}

// resolve follows a local reference to #/$defs/<name> or #/definitions/<name> (or "#" itself); anything
// else is not followed.
func (g *argsGen) resolve(ref string) any {
	if ref == "#" {
		return g.root
	}
	for _, p := range [...]string{"#/$defs/", "#/definitions/"} {
		if name, ok := strings.CutPrefix(ref, p); ok {
			defs, _ := g.root[strings.Trim(p[1:], "/")].(map[string]any)
			if v, ok := defs[name]; ok {
				return v
			}
		}
	}
	return nil
}

// schemaType is the schema's type, the first non-null entry of a type array, or one inferred from the
// keywords present when there is no type.
func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		first := ""
		for _, v := range t {
			if name, ok := v.(string); ok {
				if name != "null" {
					return name
				}
				first = name
			}
		}
		return first
	}
	switch {
	case s["properties"] != nil || s["required"] != nil:
		return "object"
	case s["items"] != nil || s["minItems"] != nil:
		return "array"
	case s["minLength"] != nil || s["maxLength"] != nil || s["format"] != nil:
		return "string"
	case s["minimum"] != nil || s["maximum"] != nil:
		return "number"
	}
	return "null"
}

func (g *argsGen) properties(dst []byte, s map[string]any, depth int) ([]byte, error) {
	props, _ := s["properties"].(map[string]any)
	required, _ := s["required"].([]any)
	dst = append(dst, '{')
	seen := make(map[string]bool, len(required))
	for _, r := range required {
		name, ok := r.(string)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		if len(seen) > 1 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		var sub any = true // a required property with no schema takes any value
		if p, ok := props[name]; ok {
			sub = p
		} else if ap, ok := s["additionalProperties"]; ok {
			sub = ap
		}
		var err error
		if dst, err = g.value(dst, sub, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func (g *argsGen) array(dst []byte, s map[string]any, depth int) ([]byte, error) {
	n := int(bound(s, "minItems", 0))
	if n < 0 || n > argsMaxItems {
		return dst, errArgsUnsatisfiable
	}
	items, ok := s["items"]
	if !ok {
		items = true
	}
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = g.value(dst, items, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// formats are values for the string formats SDKs and validators commonly check.
var formats = map[string]string{
	"date-time": "2026-01-01T00:00:00Z",
	"date":      "2026-01-01",
	"time":      "00:00:00Z",
	"email":     "mock@example.com",
	"uri":       "https://example.com/",
	"uuid":      "00000000-0000-4000-8000-000000000000",
	"ipv4":      "192.0.2.1",
}

func appendString(dst []byte, s map[string]any) ([]byte, error) {
	v := "mock"
	if f, ok := s["format"].(string); ok && formats[f] != "" {
		v = formats[f]
	}
	minLen, maxLen := bound(s, "minLength", 0), bound(s, "maxLength", math.Inf(1))
	if minLen > argsMaxString || minLen > maxLen {
		return dst, errArgsUnsatisfiable
	}
	if float64(len(v)) > maxLen {
		v = v[:int(maxLen)]
	}
	if pad := int(minLen) - len(v); pad > 0 {
		v += strings.Repeat("x", pad)
	}
	return appendJSONString(dst, v), nil
}

// appendNumber picks 1 when the bounds allow it, else the nearest bound inside them.
func appendNumber(dst []byte, s map[string]any, integer bool) ([]byte, error) {
	lo, hi := bound(s, "minimum", math.Inf(-1)), bound(s, "maximum", math.Inf(1))
	if x, ok := s["exclusiveMinimum"].(float64); ok {
		lo = math.Max(lo, math.Nextafter(x, math.Inf(1)))
		if integer {
			lo = math.Max(lo, math.Floor(x)+1)
		}
	}
	if x, ok := s["exclusiveMaximum"].(float64); ok {
		hi = math.Min(hi, math.Nextafter(x, math.Inf(-1)))
		if integer {
			hi = math.Min(hi, math.Ceil(x)-1)
		}
	}
	if integer {
		lo, hi = math.Ceil(lo), math.Floor(hi)
	}
	v := math.Min(math.Max(1, lo), hi)
	if v < lo || math.IsInf(v, 0) || math.IsNaN(v) {
		return dst, errArgsUnsatisfiable
	}
	if integer {
		if math.Abs(v) > 1<<53 {
			return dst, errArgsUnsatisfiable
		}
		return strconv.AppendInt(dst, int64(v), 10), nil
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64), nil
}

func bound(s map[string]any, key string, def float64) float64 {
	if v, ok := s[key].(float64); ok && !math.IsNaN(v) {
		return v
	}
	return def
}

// appendAny appends a const or enum value as the client wrote it.
func appendAny(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, errArgsUnsatisfiable
	}
	return append(dst, b...), nil
}
