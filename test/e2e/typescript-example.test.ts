/** examples/typescript-client.ts, the README's TypeScript example, against a real server. */
import { runExample } from "../../examples/typescript-client";
import { PORTS, urlOf } from "../support/ports";
import { startTestServer, testKey } from "../support/test-server";

it.each(PORTS)("runs the TypeScript client example end to end on the %s port", async (port) => {
  const t = await startTestServer({ keys: [{ provider: "openai", key: testKey("openai", 4) }] });
  try {
    const result = await runExample(urlOf(t, port), "gpt-4o-mini");
    const keyHash = t.pool.listKeys()[0].keyHash;
    expect(result).toEqual({
      keyHash,
      family: "turbo",
      readyAt: t.clock.now() + 10_000,
      keys: [{ keyHash, promptCount: 1 }],
      retryAfterMs: 10_000,
    });
  } finally {
    await t.close();
  }
});
