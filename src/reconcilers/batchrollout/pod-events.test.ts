import { describe, expect, it } from "vitest";
import { KIND, LABEL_ORDINAL } from "../../api/batchrollout.ts";
import { Expectations } from "./expectations.ts";
import type { CachedPod } from "./pod-cache.ts";
import { POD_EVENT_BATCH_MS, podEventHandlers } from "./pod-events.ts";

function pod(ordinal: number, owner: string | null = "sim", deleting = false): CachedPod {
  return {
    metadata: {
      name: `sim-${ordinal}`,
      namespace: "ns",
      labels: { [LABEL_ORDINAL]: String(ordinal) },
      ...(owner ? { ownerReferences: [{ kind: KIND, name: owner, uid: "r-1", controller: true }] } : {}),
      ...(deleting ? { deletionTimestamp: "2025-01-01T00:00:00Z" } : {}),
    },
    spec: {},
    status: {},
  };
}

function setup() {
  const adds: [string, number][] = [];
  const expectations = new Expectations(() => 0);
  const handlers = podEventHandlers({ addAfter: (key, ms) => adds.push([key, ms]) }, expectations);
  return { adds, expectations, handlers };
}

describe("podEventHandlers", () => {
  it("enqueues the owning rollout after POD_EVENT_BATCH_MS, for adds, updates and deletes", () => {
    const { adds, handlers } = setup();
    handlers.onAdd?.(pod(1));
    handlers.onUpdate?.(pod(1), pod(1));
    handlers.onDelete?.(pod(1));
    expect(adds).toEqual([
      ["ns/sim", POD_EVENT_BATCH_MS],
      ["ns/sim", POD_EVENT_BATCH_MS],
      ["ns/sim", POD_EVENT_BATCH_MS],
    ]);
  });

  it("clears expectations at once, without waiting for the reconcile", () => {
    const { expectations, handlers } = setup();
    expectations.expectCreate("ns/sim", 3);
    expectations.expectDelete("ns/sim", "sim-4");
    handlers.onAdd?.(pod(3));
    handlers.onUpdate?.(pod(4), pod(4, "sim", true));
    const pending = expectations.pending("ns/sim");
    expect(pending.creates.size).toBe(0);
    expect(pending.deletes.size).toBe(0);
  });

  it("ignores pods no rollout controls", () => {
    const { adds, handlers } = setup();
    handlers.onAdd?.(pod(1, null));
    expect(adds).toEqual([]);
  });
});
