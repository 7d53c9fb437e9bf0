import { setTimeout as sleep } from "node:timers/promises";
import { API_VERSION, PLURAL } from "../api/batchrollout.ts";
import type { KubeClient } from "../kube/client.ts";
import { EVENTS, resourcePath } from "../kube/resources.ts";
import { isReady, progressLine, stateLine, recentWaves, type EventView, type RolloutView } from "./render.ts";

// Reads a rollout and its wave Events, and follows it until Ready: the one implementation of the
// live progress that `kubectl batchrollout status -w` and scripts/demo.ts print.

/** How often progress is re-read while following: one line a second at most, as the demo printed. */
export const FOLLOW_POLL_MS = 1_000;

export const rolloutPath = (namespace: string, name: string) => `/apis/${API_VERSION}/namespaces/${namespace}/${PLURAL}/${name}`;

export interface Rollout extends RolloutView {
  metadata: RolloutView["metadata"] & { uid?: string };
}

export function getRollout(client: KubeClient, namespace: string, name: string): Promise<Rollout> {
  return client.get<Rollout>(rolloutPath(namespace, name));
}

/** Events about the rollout (events.k8s.io/v1), by its uid. */
export async function rolloutEvents(client: KubeClient, namespace: string, name: string): Promise<EventView[]> {
  const list = await client.get<{ items: EventView[] }>(resourcePath(EVENTS, { namespace }), { fieldSelector: `regarding.name=${name}` });
  return list.items;
}

export async function historyLines(client: KubeClient, r: Rollout): Promise<string[]> {
  const events = await rolloutEvents(client, r.metadata.namespace ?? "", r.metadata.name);
  const lines = recentWaves(events, r.metadata.uid);
  return lines.length > 0 ? ["wave history:", ...lines] : ["wave history: no wave yet"];
}

export interface FollowOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Where lines go: stdout for the plugin and the demo. */
  say: (line: string) => void;
  /** Elapsed time is counted from here (ms since the epoch); default: the rollout's creation. */
  since?: number;
  pollMs?: number;
  /** Called once per poll; throw to stop following (a deadline, an operator that exited). */
  check?: (r: Rollout) => void;
  signal?: AbortSignal;
}

/** Prints a progress line whenever it changes until the rollout is Ready; returns it then. */
export async function followRollout(opts: FollowOptions): Promise<Rollout> {
  const { client, namespace, name, say, pollMs = FOLLOW_POLL_MS } = opts;
  let last = "";
  let lastState = "";
  for (;;) {
    const r = await getRollout(client, namespace, name);
    const created = Date.parse(r.metadata.creationTimestamp ?? "");
    const since = opts.since ?? (Number.isNaN(created) ? Date.now() : created);
    const line = progressLine(r, Date.now() - since);
    // The elapsed seconds alone changing is no news.
    const news = line.slice(line.indexOf("s  ") + 1);
    if (news !== last) say(line);
    last = news;
    const state = stateLine(r);
    if (state !== lastState && worthALine(r)) say(`      ${state}`);
    lastState = state;
    if (isReady(r)) return r;
    opts.check?.(r);
    if (opts.signal?.aborted) return r;
    await sleep(pollMs, undefined, { signal: opts.signal }).catch(() => undefined);
  }
}

/** Only states worth a line of their own while following: a stall, a pause, a guard's hold. */
function worthALine(r: Rollout): boolean {
  const progressing = r.status?.conditions?.find((c) => c.type === "Progressing");
  const stalled = r.status?.conditions?.find((c) => c.type === "Stalled");
  return stalled?.status === "True" || (progressing !== undefined && progressing.reason !== "CreatingPods" && progressing.reason !== "WaitingForReady");
}
