package mockupstream

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validate fails t unless args is valid against schema, checked by a real JSON Schema validator (draft
// 2020-12, formats asserted).
func validate(t *testing.T, schema, args string) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatalf("schema %s: %v", schema, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("tool.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("tool.json")
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(args))
	if err != nil {
		t.Fatalf("arguments %q are not JSON: %v", args, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("arguments %s do not validate against %s: %v", args, schema, err)
	}
}

func TestToolArguments_ValidateAgainstTheirSchema(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   string // exact bytes, where the rule makes them worth pinning
	}{
		{name: "required string", schema: citySchema, want: cityArgs},
		{name: "optional properties are left out",
			schema: `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"]}`,
			want:   `{"b":1}`},
		{name: "every type",
			schema: `{"type":"object","required":["s","n","i","b","a","o","z","t"],"properties":{
				"s":{"type":"string"},"n":{"type":"number"},"i":{"type":"integer"},"b":{"type":"boolean"},
				"a":{"type":"array","items":{"type":"string"}},"o":{"type":"object"},"z":{"type":"null"},
				"t":{"type":["null","integer"]}}}`,
			want: `{"s":"mock","n":1,"i":1,"b":true,"a":[],"o":{},"z":null,"t":1}`},
		{name: "enum and const take the first value",
			schema: `{"type":"object","required":["unit","v"],"properties":{
				"unit":{"type":"string","enum":["celsius","fahrenheit"]},"v":{"const":3}}}`,
			want: `{"unit":"celsius","v":3}`},
		{name: "numeric bounds",
			schema: `{"type":"object","required":["lo","hi","ex","f"],"properties":{
				"lo":{"type":"integer","minimum":10},"hi":{"type":"integer","maximum":-5},
				"ex":{"type":"integer","exclusiveMinimum":1,"exclusiveMaximum":3},
				"f":{"type":"number","minimum":0.25,"maximum":0.75}}}`,
			want: `{"lo":10,"hi":-5,"ex":2,"f":0.75}`},
		{name: "string lengths and formats",
			schema: `{"type":"object","required":["long","short","when","mail","id"],"properties":{
				"long":{"type":"string","minLength":12},"short":{"type":"string","maxLength":2},
				"when":{"type":"string","format":"date-time"},"mail":{"type":"string","format":"email"},
				"id":{"type":"string","format":"uuid"}}}`},
		{name: "minItems and nested objects",
			schema: `{"type":"object","required":["stops"],"properties":{"stops":{"type":"array","minItems":2,
				"items":{"type":"object","required":["city","days"],"properties":{
				"city":{"type":"string"},"days":{"type":"integer","minimum":1}}}}}}`,
			want: `{"stops":[{"city":"mock","days":1},{"city":"mock","days":1}]}`},
		{name: "$defs and definitions references",
			schema: `{"type":"object","required":["a","b"],"properties":{"a":{"$ref":"#/$defs/loc"},
				"b":{"$ref":"#/definitions/n"}},"$defs":{"loc":{"type":"object","required":["lat"],
				"properties":{"lat":{"type":"number","minimum":-90,"maximum":90}}}},
				"definitions":{"n":{"type":"integer","minimum":5}}}`,
			want: `{"a":{"lat":1},"b":5}`},
		{name: "anyOf and oneOf take the first branch",
			schema: `{"type":"object","required":["x","y"],"properties":{
				"x":{"anyOf":[{"type":"string","minLength":5},{"type":"null"}]},
				"y":{"oneOf":[{"type":"integer","minimum":100},{"type":"string"}]}}}`,
			want: `{"x":"mockx","y":100}`},
		{name: "a required property without a schema", schema: `{"type":"object","required":["free"]}`,
			want: `{"free":null}`},
		{name: "no parameters at all", schema: `{}`, want: `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := toolArgumentsFor(json.RawMessage(tc.schema))
			validate(t, tc.schema, got)
			if tc.want != "" && got != tc.want {
				t.Errorf("arguments %s, want %s", got, tc.want)
			}
			if again := toolArgumentsFor(json.RawMessage(tc.schema)); again != got {
				t.Errorf("not deterministic: %s then %s", got, again)
			}
		})
	}
}

func TestToolArguments_UnusableSchema_FallsBackToEmptyObject(t *testing.T) {
	for _, schema := range []string{``, `null`, `"string"`, `[1]`, `{"type":"string"}`, `{not json`,
		`{"type":"object","required":["a"],"properties":{"a":false}}`,
		`{"type":"object","required":["a"],"properties":{"a":{"type":"integer","minimum":5,"maximum":4}}}`,
		`{"type":"object","required":["a"],"properties":{"a":{"$ref":"https://example.com/x.json"}}}`,
		`{"type":"object","required":["a"],"properties":{"a":{"enum":[]}}}`} {
		if got := toolArgumentsFor(json.RawMessage(schema)); got != "{}" {
			t.Errorf("schema %s gave %s, want {}", schema, got)
		}
	}
}

func TestToolArguments_HostileSchemas_StayBounded(t *testing.T) {
	var many strings.Builder
	many.WriteString(`{"type":"object","properties":{},"required":[`)
	for i := range 10_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		many.WriteString(`"p` + strconv.Itoa(i) + `"`)
	}
	many.WriteString(`]}`)
	tests := []struct{ name, schema string }{
		{"recursive $ref, branching", `{"$ref":"#/$defs/n","$defs":{"n":{"type":"object","required":["l","r"],
			"properties":{"l":{"$ref":"#/$defs/n"},"r":{"$ref":"#/$defs/n"}}}}}`},
		{"recursive $ref to the root", `{"type":"object","required":["self"],"properties":{"self":{"$ref":"#"}}}`},
		{"$ref cycle without output", `{"type":"object","required":["a"],"properties":{"a":{"$ref":"#/$defs/x"}},
			"$defs":{"x":{"$ref":"#/$defs/y"},"y":{"anyOf":[{"$ref":"#/$defs/x"}]}}}`},
		{"minItems 1e9", `{"type":"object","required":["a"],"properties":{"a":{"type":"array","minItems":1e9}}}`},
		{"minLength 1e9", `{"type":"object","required":["s"],"properties":{"s":{"type":"string","minLength":1e9}}}`},
		{"nested arrays at the item cap", `{"type":"object","required":["a"],"properties":{"a":{"type":"array",
			"minItems":64,"items":{"type":"array","minItems":64,"items":{"type":"array","minItems":64,
			"items":{"type":"string","minLength":1000}}}}}}`},
		{"10,000 required properties", many.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := toolArgumentsFor(json.RawMessage(tc.schema))
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v", took)
			}
			if len(got) > argsMaxBytes || !json.Valid([]byte(got)) {
				t.Errorf("%d bytes, valid JSON %v", len(got), json.Valid([]byte(got)))
			}
		})
	}
}

func TestArgFragments_ConcatenateToTheArguments(t *testing.T) {
	args := toolArgumentsFor(json.RawMessage(`{"type":"object","required":["stops"],"properties":{"stops":
		{"type":"array","minItems":3,"items":{"type":"string","minLength":7}}}}`))
	for _, chunks := range []int{0, 1, 2, 7, len(args), 10 * len(args)} {
		frags := argFragments(args, chunks)
		if got := strings.Join(frags, ""); got != args {
			t.Errorf("%d chunks joined to %q, want %q", chunks, got, args)
		}
		if want := min(max(chunks, 1), len(args)); len(frags) != want {
			t.Errorf("%d chunks gave %d fragments, want %d", chunks, len(frags), want)
		}
	}
}

func TestToolResultLast_AnsweredInText_UnlessAToolIsForced(t *testing.T) {
	chatTools := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + citySchema + `}}]`
	chatMsgs := `"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":` +
		`[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"mock\"}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"sunny"}]`
	respTools := `"tools":[{"type":"function","name":"get_weather","parameters":` + citySchema + `}]`
	respInput := `"input":[{"role":"user","content":"weather?"},{"type":"function_call","call_id":"call_1",` +
		`"name":"get_weather","arguments":"{}"},{"type":"function_call_output","call_id":"call_1","output":"sunny"}]`
	antTools := `"tools":[{"name":"get_weather","input_schema":` + citySchema + `}]`
	antMsgs := `"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"tool_use",` +
		`"id":"toolu_1","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result",` +
		`"tool_use_id":"toolu_1","content":"sunny"}]}]`
	tests := []struct {
		name, path, body string
		headers          []string
		want             string
	}{
		{"chat, auto", "/v1/chat/completions", `{"model":"m",` + chatMsgs + `,` + chatTools + `}`, nil,
			`"finish_reason":"stop"`},
		{"chat, required calls again", "/v1/chat/completions", `{"model":"m",` + chatMsgs + `,` + chatTools +
			`,"tool_choice":"required"}`, nil, `"finish_reason":"tool_calls"`},
		{"responses, auto", "/v1/responses", `{"model":"m",` + respInput + `,` + respTools + `}`, nil,
			`"type":"output_text"`},
		{"responses, forced calls again", "/v1/responses", `{"model":"m",` + respInput + `,` + respTools +
			`,"tool_choice":{"type":"function","name":"get_weather"}}`, nil, `"type":"function_call"`},
		{"anthropic, auto", "/v1/messages", `{"model":"c","max_tokens":100,` + antMsgs + `,` + antTools + `}`,
			anthropicHeaders(), `"stop_reason":"end_turn"`},
		{"anthropic, any calls again", "/v1/messages", `{"model":"c","max_tokens":100,` + antMsgs + `,` + antTools +
			`,"tool_choice":{"type":"any"}}`, anthropicHeaders(), `"stop_reason":"tool_use"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := startMock(t, Config{})
			r := m.mustDo(t, "POST", tc.path, tc.body, tc.headers...)
			if r.status != 200 || !strings.Contains(string(r.body), tc.want) {
				t.Errorf("status %d, want %s in %s", r.status, tc.want, r.body)
			}
		})
	}
}
