// The official JS SDKs as gateway clients. Driven by tests/conformance/test_matrix_node.py,
// which scripts the fake upstreams and asserts on the JSON this prints (one line on stdout).
//
//   node matrix.mjs conversation <gateway-url> <key> <openai|anthropic> <model> <json|stream>
//     three requests in order: "Hi"; a question that gets a tool call; the tool result
//   node matrix.mjs error <gateway-url> <key> <openai|anthropic> <model> <json|stream>
//     one request that is expected to fail; prints the SDK error's class and status
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [mode, url, key, dialect, model, how] = process.argv.slice(2);
const stream = how === "stream";
const QUESTION = "What is the weather in Paris?";
const TOOL_RESULT = "sunny, 21C";
const SCHEMA = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
};

async function openaiTurn(messages) {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
  const params = {
    model,
    messages,
    tools: [{ type: "function", function: { name: "get_weather", parameters: SCHEMA } }],
  };
  if (!stream) {
    const r = await client.chat.completions.create(params);
    const choice = r.choices[0];
    const calls = (choice.message.tool_calls ?? []).map((c) => [
      c.id,
      c.function.name,
      JSON.parse(c.function.arguments),
    ]);
    return {
      text: choice.message.content ?? "",
      stop: choice.finish_reason,
      calls,
      input: r.usage.prompt_tokens,
      output: r.usage.completion_tokens,
    };
  }
  const turn = { text: "", stop: "", calls: [], input: 0, output: 0 };
  const parts = new Map();
  const chunks = await client.chat.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of chunks) {
    if (chunk.usage) {
      turn.input = chunk.usage.prompt_tokens;
      turn.output = chunk.usage.completion_tokens;
    }
    for (const choice of chunk.choices) {
      turn.text += choice.delta.content ?? "";
      for (const call of choice.delta.tool_calls ?? []) {
        if (call.id) parts.set(call.index, { id: call.id, name: call.function.name, args: "" });
        else parts.get(call.index).args += call.function?.arguments ?? "";
      }
      turn.stop = choice.finish_reason ?? turn.stop;
    }
  }
  turn.calls = [...parts.values()].map((p) => [p.id, p.name, JSON.parse(p.args)]);
  return turn;
}

async function openaiConversation() {
  const text = await openaiTurn([{ role: "user", content: "Hi" }]);
  const question = { role: "user", content: QUESTION };
  const call = await openaiTurn([question]);
  const [id, name, args] = call.calls[0];
  const assistant = {
    role: "assistant",
    content: null,
    tool_calls: [{ id, type: "function", function: { name, arguments: JSON.stringify(args) } }],
  };
  const result = { role: "tool", tool_call_id: id, content: TOOL_RESULT };
  const final = await openaiTurn([question, assistant, result]);
  return { text, call, final };
}

async function anthropicTurn(messages) {
  const client = new Anthropic({ baseURL: url, apiKey: key, maxRetries: 0 });
  const params = {
    model,
    max_tokens: 200,
    messages,
    tools: [{ name: "get_weather", description: "Weather now", input_schema: SCHEMA }],
  };
  const message = stream
    ? await client.messages.stream(params).finalMessage()
    : await client.messages.create(params);
  return {
    text: message.content
      .filter((b) => b.type === "text")
      .map((b) => b.text)
      .join(""),
    stop: message.stop_reason,
    calls: message.content.filter((b) => b.type === "tool_use").map((b) => [b.id, b.name, b.input]),
    input: message.usage.input_tokens,
    output: message.usage.output_tokens,
  };
}

async function anthropicConversation() {
  const text = await anthropicTurn([{ role: "user", content: "Hi" }]);
  const question = { role: "user", content: QUESTION };
  const call = await anthropicTurn([question]);
  const [id, name, input] = call.calls[0];
  const final = await anthropicTurn([
    question,
    { role: "assistant", content: [{ type: "tool_use", id, name, input }] },
    { role: "user", content: [{ type: "tool_result", tool_use_id: id, content: TOOL_RESULT }] },
  ]);
  return { text, call, final };
}

async function failing() {
  try {
    if (dialect === "openai") await openaiTurn([{ role: "user", content: "Hi" }]);
    else await anthropicTurn([{ role: "user", content: "Hi" }]);
  } catch (err) {
    return { class: err.constructor.name, status: err.status ?? null, message: String(err) };
  }
  return { class: null, status: null, message: "no error" };
}

const run =
  mode === "error" ? failing : dialect === "openai" ? openaiConversation : anthropicConversation;
process.stdout.write(`${JSON.stringify(await run())}\n`);
