import { describe, expect, it } from "vitest";
import type { InformerHandlers } from "../../controllers/informer.ts";
import { CREATION_RATE_WINDOW_MS } from "./creation-rate.ts";
import { OthersCreatingSignal } from "./others-creating.ts";

type Pod = { metadata: { labels?: Record<string, string> } };

/** A stand-in for the unscheduled-pods cache: the test says when it has synced and what arrives. */
function arrivals() {
  const handlers: Array<Pick<InformerHandlers<Pod>, "onAdd">> = [];
  return {
    hasSynced: false,
    addHandlers(h: Pick<InformerHandlers<Pod>, "onAdd">) {
      handlers.push(h);
    },
    add(pod: Pod) {
      for (const h of handlers) h.onAdd?.(pod);
    },
  };
}

const other: Pod = { metadata: { labels: { app: "job" } } };
const ours: Pod = { metadata: { labels: { "batchrollout.dev/name": "fleet" } } };

describe("OthersCreatingSignal", () => {
  it("is undefined until the cache has synced, and counts no pod of its first list", () => {
    const pods = arrivals();
    const signal = new OthersCreatingSignal({ pods, clock: () => 0 });
    pods.add(other);
    expect(signal.perSecond()).toBeUndefined();
    pods.hasSynced = true;
    expect(signal.perSecond()).toBe(0);
  });

  it("counts pods no rollout owns over the window, and forgets them after it", () => {
    let now = 50_000;
    const pods = arrivals();
    pods.hasSynced = true;
    const signal = new OthersCreatingSignal({ pods, clock: () => now });
    pods.add(other);
    pods.add(ours);
    pods.add(other);
    expect(signal.perSecond()).toBe(2 / (CREATION_RATE_WINDOW_MS / 1_000));
    now += CREATION_RATE_WINDOW_MS;
    expect(signal.perSecond()).toBe(0);
  });
});
