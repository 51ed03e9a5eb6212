// An app built on openai-node's AzureOpenAI, unchanged but for its
// endpoint (Loom) and key (a Loom key). It prints what it got as JSON for
// ../../azure_node_test.go to check against Loom's records.
import { AzureOpenAI } from 'openai';

const options = { endpoint: process.env.LOOM_URL, apiVersion: '2024-10-21', maxRetries: 0 };
const client = new AzureOpenAI({ ...options, apiKey: process.env.LOOM_KEY });
const messages = [{ role: 'user', content: 'Say hello in five words' }];
const out = {};

const chat = await client.chat.completions.create({ model: 'azure-gpt', messages });
out.chat = { content: chat.choices[0].message.content, total: chat.usage.total_tokens };

const stream = await client.chat.completions.create({
  model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true },
});
let text = '';
let total = 0;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) total = chunk.usage.total_tokens;
}
out.stream = { content: text, total };

const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
out.embeddings = emb.data.length;

try {
  await new AzureOpenAI({ ...options, apiKey: 'sk-loom-not-a-key' }).chat.completions.create({ model: 'azure-gpt', messages });
  out.badKey = 200;
} catch (err) {
  out.badKey = err.status;
}
console.log(JSON.stringify(out));
