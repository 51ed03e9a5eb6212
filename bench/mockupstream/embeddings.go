package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"

	"github.com/valyala/fasthttp"
)

const (
	defaultDimensions = 8
	maxDimensions     = 8192
)

// textInput is one prompt or embedding input: text, or pre-tokenized ids.
type textInput struct {
	text     string
	tokens   []int
	isTokens bool
}

// tokenCount is exact for token arrays and bytes/4 (at least 1) for text, matching chat's estimate.
func (in textInput) tokenCount() int {
	if in.isTokens {
		return len(in.tokens)
	}
	return max(len(in.text)/4, 1)
}

// parseInputs reads the four forms OpenAI accepts for "input" and "prompt": a string, an array of strings,
// an array of token ids, or an array of token-id arrays.
func parseInputs(raw json.RawMessage) ([]textInput, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []textInput{{text: s}}, true
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		out := make([]textInput, len(ss))
		for i, v := range ss {
			out[i] = textInput{text: v}
		}
		return out, true
	}
	var toks []int
	if json.Unmarshal(raw, &toks) == nil {
		return []textInput{{tokens: toks, isTokens: true}}, true
	}
	var many [][]int
	if json.Unmarshal(raw, &many) == nil {
		out := make([]textInput, len(many))
		for i, v := range many {
			out[i] = textInput{tokens: v, isTokens: true}
		}
		return out, true
	}
	return nil, false
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

type embeddingList struct {
	Object string      `json:"object"`
	Data   []embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32s
}

func (s *Server) embeddings(ctx *fasthttp.RequestCtx, c *call) *apiError {
	var req embeddingRequest
	if err := json.Unmarshal(c.rec.Body, &req); err != nil {
		return decodeError(err)
	}
	if req.Model == "" && c.p == providerOpenAI {
		return badRequest("you must provide a model parameter", "", "")
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		return missingParam("input")
	}
	inputs, ok := parseInputs(req.Input)
	if !ok || len(inputs) == 0 || (len(inputs) == 1 && !inputs[0].isTokens && inputs[0].text == "") {
		return badRequest("'$.input' is invalid. Please check the API reference: "+
			"https://platform.openai.com/docs/api-reference.", "", "")
	}
	dims := defaultDimensions
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxDimensions {
			return badRequest("Invalid 'dimensions': integer out of range.", "dimensions", "integer_out_of_range")
		}
		dims = *req.Dimensions
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		return badRequest("Invalid value for 'encoding_format': expected 'float' or 'base64'.",
			"encoding_format", "invalid_value")
	}

	out := embeddingList{Object: "list", Model: c.modelFor(req.Model)}
	tokens := 0
	for i, in := range inputs {
		vec := embed(in, dims)
		e := embedding{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			e.Embedding = encodeFloats(vec)
		}
		out.Data = append(out.Data, e)
		tokens += in.tokenCount()
	}
	out.Usage.PromptTokens, out.Usage.TotalTokens = tokens, tokens
	s.log.update(c.rec, func(r *Received) { r.UsageSent = &Usage{PromptTokens: tokens, TotalTokens: tokens} })
	writeJSON(ctx, out)
	return nil
}

// embed derives a unit vector from a hash of the input, so the same input always embeds the same way and
// tests can compare encodings.
func embed(in textInput, dims int) []float32 {
	h := fnv.New64a()
	if in.isTokens {
		var b [8]byte
		h.Write([]byte("t:"))
		for _, t := range in.tokens {
			binary.LittleEndian.PutUint64(b[:], uint64(t))
			h.Write(b[:])
		}
	} else {
		h.Write([]byte("s:"))
		h.Write([]byte(in.text))
	}
	state := h.Sum64()
	raw := make([]float64, dims)
	var norm float64
	for i := range raw {
		state += 0x9e3779b97f4a7c15 // splitmix64: cheap, well mixed, no shared generator to lock
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		raw[i] = float64(z>>11)/(1<<53)*2 - 1
		norm += raw[i] * raw[i]
	}
	norm = math.Sqrt(norm)
	out := make([]float32, dims)
	for i, v := range raw {
		if norm > 0 {
			v /= norm
		}
		out[i] = float32(v)
	}
	return out
}

// encodeFloats is OpenAI's base64 encoding: little-endian float32s, standard alphabet, padded.
func encodeFloats(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}
