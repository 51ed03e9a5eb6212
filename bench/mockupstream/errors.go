package mockupstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"
)

// provider picks the wire dialect: paths, auth header, error shapes and a few response headers differ
// between OpenAI and Azure OpenAI, while the completion bodies are the same.
type provider int

const (
	providerOpenAI provider = iota
	providerAzure
	providerAnthropic
)

// apiError is the one error type the handler renders. Its body is final bytes because several real shapes
// (Azure's string "code", OpenAI's null "param") do not fit one Go struct.
type apiError struct {
	status     int
	body       []byte
	retryAfter string // seconds, for 429 and 503
}

func (e *apiError) Error() string { return fmt.Sprintf("mock upstream: %d %s", e.status, e.body) }

// openAIError is OpenAI's documented error object; field order follows the recorded bodies.
type openAIError struct {
	Message string  `json:"message"`
	Type    *string `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// nullable maps "" to JSON null, which is how OpenAI sends an absent param or code.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func openAIErr(status int, message, typ, param, code string) *apiError {
	b, err := json.Marshal(struct {
		Error openAIError `json:"error"`
	}{openAIError{Message: message, Type: nullable(typ), Param: nullable(param), Code: nullable(code)}})
	if err != nil { // cannot happen: only strings inside
		panic(err)
	}
	return &apiError{status: status, body: b}
}

func badRequest(message, param, code string) *apiError {
	return openAIErr(fasthttp.StatusBadRequest, message, "invalid_request_error", param, code)
}

// malformedJSON is the message OpenAI sends for a body that is not JSON.
func malformedJSON() *apiError {
	return badRequest("We could not parse the JSON body of your request. (HINT: This likely means you aren't "+
		"using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "+
		"valid JSON. If you have trouble figuring out how to fix this, please contact us through our help "+
		"center at help.openai.com.)", "", "")
}

// decodeError turns a json.Unmarshal failure into the error OpenAI would send for it.
func decodeError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return badRequest(fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.",
			te.Field, te.Type, te.Value), te.Field, "invalid_type")
	}
	return malformedJSON()
}

func missingParam(name string) *apiError {
	return badRequest("Missing required parameter: '"+name+"'.", name, "missing_required_parameter")
}

func invalidURL(method, path string) *apiError {
	return openAIErr(fasthttp.StatusNotFound, "Invalid URL ("+method+" "+path+")", "invalid_request_error", "", "")
}

func modelNotFound(model string) *apiError {
	return openAIErr(fasthttp.StatusNotFound, "The model `"+model+"` does not exist or you do not have access to it.",
		"invalid_request_error", "", "model_not_found")
}

// badMockHeader reports a control header the mock cannot read; param names the header so a test sees which.
func badMockHeader(name, value, want string) *apiError {
	return badRequest(fmt.Sprintf("Invalid value for header '%s': %q (want %s).", name, value, want),
		name, "invalid_mock_header")
}

// Azure bodies, copied in shape from fixtures/wire/azure: a string "code" and no "type" for gateway-level
// errors, OpenAI's shape plus "status" and "innererror" for content filtering.
const (
	azureAccessDenied = `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong ` +
		`API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API ` +
		`endpoint for your resource."}}`
	azureResourceNotFound   = `{"error":{"code":"404","message":"Resource not found"}}`
	azureDeploymentNotFound = `{"error":{"type":"invalid_request_error","code":"DeploymentNotFound","message":"The ` +
		`API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, ` +
		`please wait a moment and try again."}}`
	azureContentFilter = `{"error":{"message":"The response was filtered due to the prompt triggering Azure ` +
		`Content management policy. Please modify your prompt and retry. To learn more about our content filtering ` +
		`policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=21298766","type":null,` +
		`"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation",` +
		`"content_filter_result":{"hate":{"filtered":true,"severity":"high"},"self-harm":{"filtered":true,` +
		`"severity":"high"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,` +
		`"severity":"medium"}}}}}`
	azureRateLimited = `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under ` +
		`Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. ` +
		`Please retry after 1 second. Please go here: https://aka.ms/oai/quotaincrease if you would like to further ` +
		`increase the default rate limit."}}`
)

// authError is what each provider answers to a missing or wrong key. OpenAI echoes a masked key, as in
// fixtures/wire/openai/error-401-invalid-api-key.json.
func authError(p provider, presented string) *apiError {
	if p == providerAzure {
		return &apiError{status: fasthttp.StatusUnauthorized, body: []byte(azureAccessDenied)}
	}
	if presented == "" {
		return openAIErr(fasthttp.StatusUnauthorized, "You didn't provide an API key. You need to provide your API "+
			"key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the "+
			"password field (with blank username) if you're accessing the API from your browser and are prompted "+
			"for a username and password. You can obtain an API key from "+
			"https://platform.openai.com/account/api-keys.", "invalid_request_error", "", "")
	}
	return openAIErr(fasthttp.StatusUnauthorized, "Incorrect API key provided: "+maskKey(presented)+
		". You can find your API key at https://platform.openai.com/account/api-keys.",
		"invalid_request_error", "", "invalid_api_key")
}

// maskKey keeps the ends of a key, as OpenAI does, so the message never carries the whole secret.
func maskKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:4] + "****" + k[len(k)-4:]
}

// statusError renders x-mock-status. OpenAI publishes no recorded 429/500/503 body (see SOURCES.md); those
// are built from the documented {"error":{message,type,param,code}} shape and the messages its SDKs quote.
func statusError(p provider, status int, model string) *apiError {
	if p == providerAzure {
		switch status {
		case fasthttp.StatusBadRequest:
			return &apiError{status: status, body: []byte(azureContentFilter)}
		case fasthttp.StatusUnauthorized:
			return &apiError{status: status, body: []byte(azureAccessDenied)}
		case fasthttp.StatusNotFound:
			return &apiError{status: status, body: []byte(azureDeploymentNotFound)}
		case fasthttp.StatusTooManyRequests:
			return &apiError{status: status, body: []byte(azureRateLimited), retryAfter: "1"}
		}
		// Azure relays the model service's own 5xx bodies, which are OpenAI-shaped.
	}
	switch status {
	case fasthttp.StatusBadRequest:
		return badRequest("Invalid value for 'messages': the mock was asked to reject this request.",
			"messages", "invalid_value")
	case fasthttp.StatusUnauthorized:
		return authError(providerOpenAI, "sk-mock-rejected-key")
	case fasthttp.StatusForbidden:
		return openAIErr(status, "Country, region, or territory not supported", "request_forbidden", "",
			"unsupported_country_region_territory")
	case fasthttp.StatusNotFound:
		return modelNotFound(model)
	case fasthttp.StatusTooManyRequests:
		e := openAIErr(status, "Rate limit reached for "+model+" in organization org-mock on requests per min "+
			"(RPM): Limit 10000, Used 10000, Requested 1. Please try again in 6ms. Visit "+
			"https://platform.openai.com/account/rate-limits to learn more.", "requests", "", "rate_limit_exceeded")
		e.retryAfter = "1"
		return e
	case fasthttp.StatusInternalServerError:
		return openAIErr(status, "The server had an error while processing your request. Sorry about that!",
			"server_error", "", "")
	case fasthttp.StatusServiceUnavailable:
		e := openAIErr(status, "That model is currently overloaded with other requests. You can retry your "+
			"request, or contact us through our help center at help.openai.com if the error persists.",
			"server_error", "", "overloaded")
		e.retryAfter = "1"
		return e
	}
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	return openAIErr(status, "The mock upstream was asked to answer "+strconv.Itoa(status)+".", typ, "", "")
}

// anthropicErr is Anthropic's error shape, as in fixtures/wire/anthropic/error-*.json.
func anthropicErr(status int, typ, message string) *apiError {
	return &apiError{status: status, body: mustJSON(anthropicErrorBody{Type: "error",
		Error: anthropicErrorDetail{Type: typ, Message: message}})}
}

type anthropicErrorBody struct {
	Type  string               `json:"type"`
	Error anthropicErrorDetail `json:"error"`
}

type anthropicErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// anthropicStatusError renders x-mock-status on Anthropic paths, with the error types Anthropic documents
// per status (529 is its "overloaded").
func anthropicStatusError(status int) *apiError {
	var e *apiError
	switch status {
	case fasthttp.StatusBadRequest:
		e = anthropicErr(status, "invalid_request_error", "messages: the mock was asked to reject this request")
	case fasthttp.StatusUnauthorized:
		e = anthropicErr(status, "authentication_error", "invalid x-api-key")
	case fasthttp.StatusForbidden:
		e = anthropicErr(status, "permission_error", "Your API key does not have permission to use the specified resource.")
	case fasthttp.StatusNotFound:
		e = anthropicErr(status, "not_found_error", "The requested resource could not be found.")
	case fasthttp.StatusRequestEntityTooLarge:
		e = anthropicErr(status, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
	case fasthttp.StatusTooManyRequests:
		e = anthropicErr(status, "rate_limit_error", "This request would exceed the rate limit for your organization "+
			"of 50 requests per minute. Please try again later.")
		e.retryAfter = "1"
	case fasthttp.StatusInternalServerError:
		e = anthropicErr(status, "api_error", "Internal server error")
	case 529:
		e = anthropicErr(status, "overloaded_error", "Overloaded")
	default:
		typ := "invalid_request_error"
		if status >= 500 {
			typ = "api_error"
		}
		e = anthropicErr(status, typ, "The mock upstream was asked to answer "+strconv.Itoa(status)+".")
	}
	return e
}

// asAnthropic re-shapes an OpenAI-shaped error (a bad control header, a replay name) for an Anthropic path,
// where clients parse {"type":"error","error":{type,message}}.
func asAnthropic(e *apiError) *apiError {
	var v struct {
		Type  string `json:"type"`
		Error struct {
			Message string  `json:"message"`
			Type    *string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(e.body, &v) != nil || v.Type == "error" {
		return e
	}
	typ := "invalid_request_error"
	if e.status >= 500 {
		typ = "api_error"
	}
	out := anthropicErr(e.status, typ, v.Error.Message)
	out.retryAfter = e.retryAfter
	return out
}

// writeError renders e. Content types follow the recordings: OpenAI adds a charset, Azure does not.
func writeError(ctx *fasthttp.RequestCtx, p provider, e *apiError) {
	if p == providerAnthropic {
		e = asAnthropic(e)
	}
	ctx.SetStatusCode(e.status)
	if p != providerOpenAI {
		ctx.SetContentType("application/json")
	} else {
		ctx.SetContentType("application/json; charset=utf-8")
	}
	if e.retryAfter != "" {
		ctx.Response.Header.Set("Retry-After", e.retryAfter)
		if secs, err := strconv.Atoi(e.retryAfter); err == nil && p != providerAnthropic {
			ctx.Response.Header.Set("retry-after-ms", strconv.Itoa(secs*1000))
		}
	}
	if p == providerAnthropic {
		// Anthropic's SDKs read x-should-retry before the status (see the recorded error headers).
		ctx.Response.Header.Set("x-should-retry", strconv.FormatBool(e.status == fasthttp.StatusTooManyRequests ||
			e.status == fasthttp.StatusConflict || e.status >= 500))
	} else if e.status == fasthttp.StatusTooManyRequests {
		ctx.Response.Header.Set("x-ratelimit-remaining-requests", "0")
	}
	ctx.SetBody(e.body)
}
