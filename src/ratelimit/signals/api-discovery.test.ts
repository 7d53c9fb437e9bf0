import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeResponse, RequestOptions } from "../../kube/client.ts";
import { ApiDiscovery } from "./api-discovery.ts";

const logger = pino({ level: "silent" });

/** A client whose /apis answers with the next of `answers` (an Error fails the request). */
function client(answers: Array<string[] | Error>) {
  const requests: RequestOptions[] = [];
  return {
    requests,
    request: async <T>(o: RequestOptions): Promise<KubeResponse<T>> => {
      requests.push(o);
      const answer = answers.shift() ?? new Error("no more answers");
      if (answer instanceof Error) throw answer;
      return { code: 200, headers: {}, body: { groups: answer.map((name) => ({ name })) } as T };
    },
  };
}

describe("ApiDiscovery", () => {
  it("has no answer until one comes, then tells it at once and keeps it through a failure", async () => {
    const answers: ReadonlySet<string>[] = [];
    const c = client([new Error("connection refused"), ["apps", "cilium.io"], new Error("timeout")]);
    const discovery = new ApiDiscovery({ client: c, logger, onAnswer: (groups) => answers.push(groups) });
    expect(await discovery.refresh()).toBeUndefined();
    expect(discovery.groups).toBeUndefined();
    expect(await discovery.refresh()).toEqual(new Set(["apps", "cilium.io"]));
    expect(answers).toEqual([new Set(["apps", "cilium.io"])]);
    expect(await discovery.refresh()).toEqual(new Set(["apps", "cilium.io"]));
    expect(answers).toHaveLength(1);
  });

  it("asks again soon while it has no answer, then only every refresh interval", async () => {
    const c = client([new Error("connection refused"), ["apps"], ["apps"]]);
    const discovery = new ApiDiscovery({ client: c, logger, retryIntervalMs: 5, refreshIntervalMs: 60_000 });
    const stop = new AbortController();
    const running = discovery.run(stop.signal);
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop.abort();
    await running;
    expect(c.requests.map((r) => r.path)).toEqual(["/apis", "/apis"]);
    expect(discovery.groups).toEqual(new Set(["apps"]));
  });
});
