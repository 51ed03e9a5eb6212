package messages

import "github.com/loom-gateway/loom/proxy/internal/json"

// obj is the members of one JSON object that any Messages object (message,
// content block, source, tool) may have, read in one walk: nested content
// (a prompt, a tool result) is scanned once per level instead of once per
// field looked up. A key sent twice keeps its last value, as most decoders
// do. Absent members have kind Invalid.
type obj struct {
	typ, role, text, source, id, name, input, toolUseID, content []byte
	title, mediaType, data, url, description, inputSchema        []byte

	roleK, textK, sourceK, idK, nameK, inputK, toolUseIDK, contentK json.Kind
	titleK, mediaTypeK, dataK, urlK, descriptionK, inputSchemaK     json.Kind
	typK, strictK                                                   json.Kind
}

func readObj(v []byte) obj {
	var o obj
	var m json.Members
	if !m.Reset(v) {
		return o
	}
	for m.Next() {
		val, kind := m.Value(), m.Kind()
		switch string(m.Key()) {
		case "type":
			o.typ, o.typK = val, kind
		case "role":
			o.role, o.roleK = val, kind
		case "text":
			o.text, o.textK = val, kind
		case "source":
			o.source, o.sourceK = val, kind
		case "id":
			o.id, o.idK = val, kind
		case "name":
			o.name, o.nameK = val, kind
		case "input":
			o.input, o.inputK = val, kind
		case "tool_use_id":
			o.toolUseID, o.toolUseIDK = val, kind
		case "content":
			o.content, o.contentK = val, kind
		case "title":
			o.title, o.titleK = val, kind
		case "media_type":
			o.mediaType, o.mediaTypeK = val, kind
		case "data":
			o.data, o.dataK = val, kind
		case "url":
			o.url, o.urlK = val, kind
		case "description":
			o.description, o.descriptionK = val, kind
		case "input_schema":
			o.inputSchema, o.inputSchemaK = val, kind
		case "strict":
			o.strictK = kind
		}
	}
	if o.typK != json.String {
		o.typ = nil
	}
	return o
}

// is reports whether the object's type is t (quoted, as `"text"`).
func (o *obj) is(t string) bool { return string(o.typ) == t }
