package tap

import (
	"github.com/loom-gateway/loom/proxy/call"
	"github.com/loom-gateway/loom/proxy/internal/json"
)

// ObserveContent adds the text one stream chunk carries to c: each choice's
// delta.content (chat) or text (legacy completions). Only tenants that
// capture content pay for it, so it may allocate.
func ObserveContent(c *call.Content, data []byte) {
	var m json.Members
	if !m.Reset(data) {
		return
	}
	for m.Next() {
		if string(m.Key()) != "choices" || m.Kind() != json.Array {
			continue
		}
		var e json.Elements
		e.Reset(m.Value())
		for e.Next() {
			if e.Kind() != json.Object {
				continue
			}
			index, text := choiceText(e.Value())
			if text != nil {
				s, _ := json.AppendString(nil, text)
				c.AppendChoice(int(index), s)
			}
		}
	}
}

// choiceText finds a streamed choice's index and its quoted text, if any.
func choiceText(choice []byte) (index int64, text []byte) {
	var m json.Members
	m.Reset(choice)
	for m.Next() {
		switch string(m.Key()) {
		case "index":
			index, _ = json.Int(m.Value())
		case "text":
			if m.Kind() == json.String {
				text = m.Value()
			}
		case "delta":
			if m.Kind() != json.Object {
				continue
			}
			var d json.Members
			d.Reset(m.Value())
			for d.Next() {
				if string(d.Key()) == "content" && d.Kind() == json.String {
					text = d.Value()
				}
			}
		}
	}
	return index, text
}
