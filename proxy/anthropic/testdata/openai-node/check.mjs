// Reads streams that Loom translated from Anthropic's SSE into OpenAI chat
// chunks with openai-node's own stream parser and accumulator, as an app
// using the SDK against Loom would, and prints what the SDK made of each as
// one JSON line. The Go test (../../node_test.go) compares that with the
// recording. A custom fetch serves the bytes: nothing leaves the process.
import { readFile } from 'node:fs/promises';
import OpenAI from 'openai';

for (const path of process.argv.slice(2)) {
  const body = await readFile(path);
  const client = new OpenAI({
    apiKey: 'unused',
    baseURL: 'http://loom.invalid/v1',
    maxRetries: 0,
    fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
  });
  const result = { path };
  let reasoning = '';
  try {
    const stream = client.chat.completions.stream({
      model: 'claude',
      messages: [{ role: 'user', content: 'x' }],
      stream_options: { include_usage: true },
    });
    stream.on('chunk', (chunk) => {
      const delta = chunk.choices[0]?.delta;
      if (delta && typeof delta.reasoning_content === 'string') reasoning += delta.reasoning_content;
    });
    const done = await stream.finalChatCompletion();
    const choice = done.choices[0];
    result.id = done.id;
    result.model = done.model;
    result.content = choice.message.content ?? '';
    result.finish_reason = choice.finish_reason;
    result.tool_calls = (choice.message.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
    result.usage = done.usage ?? null;
  } catch (err) {
    result.error = { name: err.constructor.name, message: String(err.message) };
  }
  result.reasoning = reasoning;
  console.log(JSON.stringify(result));
}
