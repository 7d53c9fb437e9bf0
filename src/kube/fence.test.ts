import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { FencedError, fenceInterceptor } from "./fence.ts";

// What a server receives of fenced requests: the fence is asked when a request gets its connection,
// so one that waited in the client's queue while its fence turned is never sent.

let server: http.Server | undefined;
let agent: Agent | undefined;
afterEach(async () => {
  await agent?.destroy();
  server?.closeAllConnections();
  server?.close();
});

/** A server that records each request's path and answers when `release` is called for it. */
async function holdingServer(): Promise<{ origin: string; received: string[]; release: () => void }> {
  const received: string[] = [];
  const waiting: (() => void)[] = [];
  server = http.createServer((req, res) => {
    received.push(req.url ?? "");
    waiting.push(() => res.end("ok"));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, received, release: () => waiting.shift()?.() };
}

const fenced = (a: Agent, mayWrite: () => boolean, path: string) => a.compose(fenceInterceptor(mayWrite, "POST", path));

describe("fenceInterceptor", () => {
  it("sends the request while the fence allows it, and the answer comes back unchanged", async () => {
    const srv = await holdingServer();
    agent = new Agent({ connections: 1 });
    const res = request(`${srv.origin}/allowed`, { method: "POST", body: "{}", dispatcher: fenced(agent, () => true, "/allowed") });
    await expect.poll(() => srv.received).toEqual(["/allowed"]);
    srv.release();
    expect(await (await res).body.text()).toBe("ok");
  });

  it("fails with a FencedError and sends nothing when the fence says no as the request starts", async () => {
    const srv = await holdingServer();
    agent = new Agent({ connections: 1 });
    const res = request(`${srv.origin}/refused`, { method: "POST", body: "{}", dispatcher: fenced(agent, () => false, "/refused") });
    await expect(res).rejects.toBeInstanceOf(FencedError);
    expect(srv.received).toEqual([]);
  });

  it("asks again when a queued request gets its connection: a fence that turned meanwhile stops it", async () => {
    const srv = await holdingServer();
    agent = new Agent({ connections: 1 });
    let leader = true;
    const first = request(`${srv.origin}/first`, { method: "POST", body: "{}", dispatcher: fenced(agent, () => leader, "/first") });
    await expect.poll(() => srv.received).toEqual(["/first"]);
    // The only connection is busy: this one waits in the client, its fence still open when handed over.
    const second = request(`${srv.origin}/second`, { method: "POST", body: "{}", dispatcher: fenced(agent, () => leader, "/second") });
    leader = false;
    srv.release();
    expect(await (await first).body.text()).toBe("ok");
    await expect(second).rejects.toBeInstanceOf(FencedError);
    expect(srv.received).toEqual(["/first"]);
  });
});
