// An app built on @anthropic-ai/sdk, unchanged but for its base URL (Loom)
// and key (a Loom key). It prints what it got as JSON for
// ../../messages_node_test.go to check against the recordings and Loom's
// records.
import Anthropic from '@anthropic-ai/sdk';

const options = { baseURL: process.env.LOOM_URL, maxRetries: 0 };
const client = new Anthropic({ ...options, apiKey: process.env.LOOM_KEY });
const messages = [{ role: 'user', content: 'Say hello in five words' }];
const text = (m) => m.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
const replay = (name) => ({ headers: { 'x-mock-replay': `anthropic/${name}` } });
const out = {};

const unary = await client.messages.create({ model: 'claude-sonnet', max_tokens: 256, messages });
out.unary = { id: unary.id, text: text(unary), output: unary.usage.output_tokens };

const stream = client.messages.stream({ model: 'claude-sonnet', max_tokens: 256, messages }, replay('messages-stream-text.sse'));
const streamed = await stream.finalMessage();
out.stream = { text: text(streamed), output: streamed.usage.output_tokens, stop: streamed.stop_reason };

const tools = [{ name: 'get_weather', description: 'Weather in a city', input_schema: { type: 'object', properties: { location: { type: 'string' } } } }];
const toolStream = client.messages.stream({ model: 'claude-sonnet', max_tokens: 256, messages, tools }, replay('messages-stream-tool-use.sse'));
const withTools = await toolStream.finalMessage();
out.tools = withTools.content.filter((b) => b.type === 'tool_use').map((b) => b.input);

const translated = await client.messages.create({ model: 'gpt-4o', max_tokens: 256, messages });
out.translated = { text: text(translated), output: translated.usage.output_tokens };

try {
  await new Anthropic({ ...options, apiKey: 'sk-loom-not-a-key' }).messages.create({ model: 'claude-sonnet', max_tokens: 8, messages });
  out.badKey = { status: 200 };
} catch (err) {
  out.badKey = { status: err.status, type: err.error?.error?.type };
}
console.log(JSON.stringify(out));
