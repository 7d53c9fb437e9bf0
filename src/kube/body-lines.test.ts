import { describe, expect, it } from "vitest";
import { bodyLines } from "./body-lines.ts";

async function collect(chunks: (string | Uint8Array)[]): Promise<string[]> {
  async function* body() {
    for (const c of chunks) yield typeof c === "string" ? new TextEncoder().encode(c) : c;
  }
  const out: string[] = [];
  for await (const line of bodyLines(body())) out.push(line);
  return out;
}

describe("bodyLines", () => {
  it("splits lines across and within chunks, keeping empty lines", async () => {
    expect(await collect(["a\nb", "c\n\nd", "\n"])).toEqual(["a", "bc", "", "d"]);
  });

  it("keeps a character whose UTF-8 bytes are split between chunks", async () => {
    const bytes = new TextEncoder().encode("zé→\n");
    expect(await collect([bytes.slice(0, 2), bytes.slice(2, 4), bytes.slice(4)])).toEqual(["zé→"]);
  });

  it("drops a last line cut off before its newline", async () => {
    expect(await collect(['{"type":"ADDED"}\n{"type":"MOD'])).toEqual(['{"type":"ADDED"}']);
  });
});
