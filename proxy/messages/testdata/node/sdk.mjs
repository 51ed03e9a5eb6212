// Reads each URL given as an argument with the Anthropic TypeScript SDK, the
// one Claude Code is built on, and prints one JSON line per URL: the final
// message (streaming: messages.stream(...).finalMessage(), accumulated the
// SDK's way; "unary": messages.create), or the error the SDK raised.
// Usage: node sdk.mjs stream|unary URL...
import Anthropic from '@anthropic-ai/sdk';

const [mode, ...urls] = process.argv.slice(2);
const params = { model: 'claude-via-loom', max_tokens: 1024, messages: [{ role: 'user', content: 'hi' }] };
for (const url of urls) {
  const client = new Anthropic({ baseURL: url, apiKey: 'loom-key', maxRetries: 0 });
  try {
    const message = mode === 'stream'
      ? await client.messages.stream(params).finalMessage()
      : await client.messages.create(params);
    console.log(JSON.stringify({ message }));
  } catch (e) {
    console.log(JSON.stringify({ error: { name: e.constructor.name, status: e.status ?? 0, type: e.error?.error?.type ?? e.type ?? '', message: String(e.message) } }));
  }
}
