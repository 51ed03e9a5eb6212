package messages_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/messages"
	"github.com/loom-gateway/loom/proxy/tap"
)

var benchStreams = []struct{ name, file string }{
	{"text", "openai/chat-stream-long-300.chunks.jsonl"},
	{"parallel_tools", "openai/chat-stream-parallel-tool-calls.sse"},
}

// runStream translates a whole stream into dst[:0] with s and rec reused,
// as the server does with pooled ones.
func runStream(s *messages.Stream, rec *call.Record, payloads [][]byte, dst []byte) []byte {
	rec.Reset()
	s.Reset(rec, []byte("claude-via-loom"))
	out := dst[:0]
	for _, p := range payloads {
		out, _ = s.Chunk(out, p)
	}
	return s.End(out)
}

// TestStream_SteadyState_AllocatesNothing pins the per-event budget: with a
// reused Stream, Record and output buffer, translating a whole stream
// allocates nothing at all.
func TestStream_SteadyState_AllocatesNothing(t *testing.T) {
	for _, bs := range benchStreams {
		t.Run(bs.name, func(t *testing.T) {
			payloads := streamPayloads(t, bs.file)
			var s messages.Stream
			var rec call.Record
			dst := runStream(&s, &rec, payloads, nil)
			if allocs := testing.AllocsPerRun(20, func() { dst = runStream(&s, &rec, payloads, dst) }); allocs != 0 {
				t.Fatalf("%v allocations per stream of %d chunks, want 0", allocs, len(payloads))
			}
		})
	}
}

// claudeCodeLike is a request in the shape Claude Code sends: system blocks
// with cache_control, tools with JSON schemas, a tool loop.
const claudeCodeLike = `{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"temperature":1,` +
	`"system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."},{"type":"text","text":"You are an interactive CLI tool that helps users with software engineering tasks.","cache_control":{"type":"ephemeral"}}],` +
	`"tools":[{"name":"Bash","description":"Executes a given bash command","input_schema":{"type":"object","properties":{"command":{"type":"string","description":"The command to execute"},"timeout":{"type":"number"}},"required":["command"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}},` +
	`{"name":"Read","description":"Reads a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}}],` +
	`"metadata":{"user_id":"user_abc_account__session_123"},` +
	`"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>context</system-reminder>"},{"type":"text","text":"list the files","cache_control":{"type":"ephemeral"}}]},` +
	`{"role":"assistant","content":[{"type":"text","text":"I'll list them."},{"type":"tool_use","id":"toolu_01A","name":"Bash","input":{"command":"ls -la","timeout":5000}}]},` +
	`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":"total 8\ndrwxr-xr-x  2 me me 4096 go.mod"}]}]}`

func TestParseAndTranslate_AllocatesNothing(t *testing.T) {
	body := []byte(claudeCodeLike)
	var r messages.Request
	var dst []byte
	run := func() {
		if err := r.Parse(body); err != nil {
			t.Fatal(err)
		}
		var err error
		if dst, err = messages.AppendChatRequest(dst[:0], &r, body, "gpt-4o"); err != nil {
			t.Fatal(err)
		}
	}
	run()
	decodeAny(t, dst)
	if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
		t.Fatalf("%v allocations, want 0", allocs)
	}
}

func TestAppendMessage_AllocatesNothing(t *testing.T) {
	body := readFixture(t, "openai/chat-completion-parallel-tool-calls.json")
	var rec call.Record
	var dst []byte
	run := func() {
		rec.Reset()
		var err error
		if dst, err = messages.AppendMessage(dst[:0], body, []byte("m"), &rec); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
		t.Fatalf("%v allocations, want 0", allocs)
	}
}

// BenchmarkStream reports the cost of one chunk (ns/op, B/op, allocs/op
// are per chunk: the whole stream is divided by its chunk count).
func BenchmarkStream(b *testing.B) {
	for _, bs := range benchStreams {
		b.Run(bs.name, func(b *testing.B) {
			payloads := streamPayloads(b, bs.file)
			var s messages.Stream
			var rec call.Record
			dst := runStream(&s, &rec, payloads, nil)
			b.ReportAllocs()
			var in int
			for _, p := range payloads {
				in += len(p)
			}
			b.SetBytes(int64(in / len(payloads)))
			i := 0
			for b.Loop() {
				if i%len(payloads) == 0 {
					rec.Reset()
					s.Reset(&rec, []byte("claude-via-loom"))
					dst = dst[:0]
				}
				dst, _ = s.Chunk(dst[:0], payloads[i%len(payloads)])
				i++
			}
		})
	}
}

// BenchmarkTapOnly is the baseline: what the relay's tap already costs per
// chunk on an OpenAI route, for the same chunks. The translation's extra
// cost is BenchmarkStream minus this.
func BenchmarkTapOnly(b *testing.B) {
	for _, bs := range benchStreams {
		b.Run(bs.name, func(b *testing.B) {
			payloads := streamPayloads(b, bs.file)
			var rec call.Record
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%len(payloads) == 0 {
					rec.Reset()
				}
				tap.Observe(&rec, payloads[i%len(payloads)])
				i++
			}
		})
	}
}

func BenchmarkParseAndTranslate(b *testing.B) {
	body := []byte(claudeCodeLike)
	var r messages.Request
	var dst []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := r.Parse(body); err != nil {
			b.Fatal(err)
		}
		dst, _ = messages.AppendChatRequest(dst[:0], &r, body, "gpt-4o")
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	body := readFixture(b, "openai/chat-completion-parallel-tool-calls.json")
	var rec call.Record
	var dst []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rec.Reset()
		dst, _ = messages.AppendMessage(dst[:0], body, []byte("m"), &rec)
	}
}

// bigClaudeCodeLike is a long Claude Code session: a 16 KiB system prompt,
// 20 tools, 60 turns of tool use with 2 KiB results (about 200 KiB).
func bigClaudeCodeLike() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"system":[{"type":"text","text":"`)
	b.WriteString(strings.Repeat(`You are Claude Code. Use the tools \"well\".\n`, 16<<10/44))
	b.WriteString(`","cache_control":{"type":"ephemeral"}}],"tools":[`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"Tool%d","description":"%s","input_schema":{"type":"object","properties":{"a":{"type":"string","description":"the a"},"b":{"type":"array","items":{"type":"number"}}},"required":["a"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}}`, i, strings.Repeat("does things. ", 40))
	}
	b.WriteString(`],"messages":[{"role":"user","content":"start"}`)
	for i := range 60 {
		fmt.Fprintf(&b, `,{"role":"assistant","content":[{"type":"text","text":"Step %d."},{"type":"tool_use","id":"toolu_%d","name":"Tool%d","input":{"a":"x","b":[1,2,3]}}]}`, i, i, i%20)
		fmt.Fprintf(&b, `,{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_%d","content":[{"type":"text","text":"%s"}]}]}`, i, strings.Repeat("output line\\n", 2<<10/13))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkParseAndTranslate_Long(b *testing.B) {
	body := bigClaudeCodeLike()
	var r messages.Request
	var dst []byte
	if err := r.Parse(body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := r.Parse(body); err != nil {
			b.Fatal(err)
		}
		dst, _ = messages.AppendChatRequest(dst[:0], &r, body, "gpt-4o")
	}
}
