import { once } from "node:events";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Client } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES, http2Windows } from "./client.ts";

// What a server sees of our HTTP/2 flow-control windows: the stream window in the client's SETTINGS,
// the connection window in how much it may send before the client reads anything.

let server: http2.Http2Server | undefined;
afterEach(() => server?.close());

describe("http2Windows", () => {
  it("gives the server client-go's windows: 4 MiB per stream, 1 GiB per connection", async () => {
    server = http2.createServer();
    const seen = new Promise<{ stream: number | undefined; connection: number | undefined }>((resolve) => {
      server?.on("stream", (stream) => {
        const session = stream.session;
        stream.respond({ ":status": 200 });
        stream.end("ok");
        resolve({ stream: session?.remoteSettings.initialWindowSize, connection: session?.state.remoteWindowSize });
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    // Plain-text HTTP/2 (h2c) so the test needs no certificate; the windows are the same over TLS.
    const client = new Client(`http://127.0.0.1:${port}`, { allowH2: true, h2Options: { ...http2Windows(), useH2c: true } });
    try {
      const res = await client.request({ method: "GET", path: "/" });
      expect(await res.body.text()).toBe("ok");
      const windows = await seen;
      expect(windows.stream).toBe(H2_STREAM_WINDOW_BYTES);
      // The connection window is raised by a WINDOW_UPDATE right after the handshake.
      expect(windows.connection).toBeGreaterThanOrEqual(H2_CONNECTION_WINDOW_BYTES - 1_000_000);
    } finally {
      await client.close();
    }
  });
});
