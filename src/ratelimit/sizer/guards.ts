// The guards, composed in one place: each caps the wave whatever the strategy, because each protects
// the cluster and everyone else on it. What is left to do is not one of them: the planner bounds the
// last wave by what actually fits.

import { reserveCount } from "../ipam/reserve.ts";
import type { Candidate, SizerSpec, WaveSignals } from "./contract.ts";

/**
 * The guard terms, in the order that wins ties: the scheduler (pods reach it first), the kubelets,
 * IP addresses, node slots, then the cluster-wide budget. A tie with the strategy's own term goes to
 * the guard (it is the reason to act on).
 */
export function guardCandidates(spec: SizerSpec, signals: Omit<WaveSignals, "writes">): Candidate[] {
  const out: Candidate[] = [];
  const { scheduler, kubelet, ipam: ipamSpec } = spec.guards;
  const cap = (limitedBy: Candidate["limitedBy"], room: number, message: string) => out.push({ size: Math.max(0, room), limitedBy, message });
  const { unschedulable: u, pending, starting, ipam, nodeSlots, budget } = signals;
  if (u && u.count > 0) cap("Scheduler", 0, `${u.count} pods unschedulable${u.message ? `: ${u.message}` : ""}`);
  if (pending !== undefined) {
    const room = Math.max(0, scheduler.maxPending - pending);
    cap("Scheduler", room, `${pending} pods pending for the scheduler (max ${scheduler.maxPending}, scope ${scheduler.scope}): ${room === 0 ? "waiting for it to catch up" : `room for ${room} more`}`);
  }
  if (starting !== undefined) {
    const room = Math.max(0, kubelet.maxStarting - starting);
    const then = room === 0 ? "waiting for their nodes to start them (check the pods' events for image pulls or network setup)" : `room for ${room} more`;
    cap("Kubelet", room, `${starting} pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting ${kubelet.maxStarting}): ${then}`);
  }
  if (ipam && ipamSpec.provider !== "None") {
    // The scheduler has shown it puts pods where there is no address, and those nodes take more.
    if (ipam.overflow && ipam.overflow.openNodes > 0) cap("IPAM", 0, `${ipam.overflow.message}; no pod is created while ${ipam.overflow.openNodes} of those nodes have free pod slots`);
    if (ipam.free !== undefined) {
      const reserve = reserveCount(ipamSpec.reserve, ipam.capacity, ipam.free);
      cap("IPAM", ipam.free - reserve, `${ipam.free} pod IPs free (${ipam.provider}), ${reserve} kept in reserve (spec.guards.ipam.reserve ${ipamSpec.reserve}): room for ${Math.max(0, ipam.free - reserve)}`);
    }
  }
  if (nodeSlots !== undefined) {
    const none = "no free pod slots on nodes the template can use (check nodeSelector, tolerations, cordoned or NotReady nodes, allocatable pods)";
    cap("NodeCapacity", nodeSlots, nodeSlots <= 0 ? none : `${nodeSlots} free pod slots on nodes the template can use`);
  }
  if (budget !== undefined) cap("Budget", budget, `the cluster-wide write budget leaves ${Math.max(0, budget)} pods for this rollout this wave`);
  return out;
}

/** The smallest of the guards and the base term; earlier candidates win ties. */
export function pickSmallest(guards: readonly Candidate[], base: Candidate): Candidate {
  let best = base;
  for (let i = guards.length - 1; i >= 0; i--) {
    const c = guards[i];
    if (c && c.size <= best.size) best = c;
  }
  return best;
}

/** The strategy's term capped by every guard. */
export function capByGuards(spec: SizerSpec, signals: Omit<WaveSignals, "writes">, base: Candidate): Candidate {
  return pickSmallest(guardCandidates(spec, signals), base);
}
