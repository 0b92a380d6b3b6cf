// The Vercel AI SDK (`ai` + `@ai-sdk/openai`) as a gateway client: `openai(model)` is the
// provider's default model, which calls the Responses API. Driven by
// tests/conformance/test_responses_node.py, which scripts the upstream and asserts on the one
// JSON line this prints.
//
//   node responses.mjs <generate|stream> <gateway-url> <key> <model> [tool|text]
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const [mode, url, key, model, what = "tool"] = process.argv.slice(2);
const openai = createOpenAI({ baseURL: `${url}/v1`, apiKey: key });
const calls = [];
const tools = {
  get_weather: tool({
    description: "Weather now",
    inputSchema: jsonSchema({
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    }),
    execute: async ({ city }) => {
      calls.push(city);
      return `sunny in ${city}, 21C`;
    },
  }),
};
const params = {
  model: openai(model),
  prompt: what === "tool" ? "What is the weather in Paris?" : "What is the capital of France?",
  maxOutputTokens: 32,
  ...(what === "tool" ? { tools, stopWhen: stepCountIs(3) } : { temperature: 0 }),
};

let out;
if (mode === "stream") {
  const result = streamText(params);
  let text = "";
  const parts = [];
  for await (const part of result.fullStream) {
    parts.push(part.type);
    if (part.type === "text-delta") text += part.text;
    if (part.type === "error") throw part.error;
  }
  out = { text, parts, finish: await result.finishReason, usage: await result.totalUsage };
} else {
  const result = await generateText(params);
  out = { text: result.text, finish: result.finishReason, usage: result.totalUsage };
}
out.calls = calls;
process.stdout.write(`${JSON.stringify(out)}\n`);
