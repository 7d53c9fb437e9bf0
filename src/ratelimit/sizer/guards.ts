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
  const { maxPending, scope } = spec.guards.scheduler;
  const unschedulable = signals.unschedulable;
  if (unschedulable && unschedulable.count > 0) {
    out.push({
      size: 0,
      limitedBy: "Scheduler",
      message: `${unschedulable.count} pods unschedulable${unschedulable.message ? `: ${unschedulable.message}` : ""}`,
    });
  }
  if (signals.pending !== undefined) {
    const room = Math.max(0, maxPending - signals.pending);
    out.push({
      size: room,
      limitedBy: "Scheduler",
      message:
        room === 0
          ? `${signals.pending} pods pending for the scheduler (max ${maxPending}, scope ${scope}): waiting for it to catch up`
          : `${signals.pending} pods pending for the scheduler (max ${maxPending}, scope ${scope}): room for ${room} more`,
    });
  }
  if (signals.starting !== undefined) {
    const { maxStarting } = spec.guards.kubelet;
    const room = Math.max(0, maxStarting - signals.starting);
    out.push({
      size: room,
      limitedBy: "Kubelet",
      message:
        room === 0
          ? `${signals.starting} pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting ${maxStarting}): waiting for their nodes to start them (check the pods' events for image pulls or network setup)`
          : `${signals.starting} pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting ${maxStarting}): room for ${room} more`,
    });
  }
  const ipam = signals.ipam;
  if (ipam?.overflow && ipam.overflow.openNodes > 0 && spec.guards.ipam.provider !== "None") {
    // The scheduler has shown it puts pods where there is no address, and those nodes take more.
    out.push({ size: 0, limitedBy: "IPAM", message: `${ipam.overflow.message}; no pod is created while ${ipam.overflow.openNodes} of those nodes have free pod slots` });
  }
  if (ipam && ipam.free !== undefined && spec.guards.ipam.provider !== "None") {
    const reserve = reserveCount(spec.guards.ipam.reserve, ipam.capacity, ipam.free);
    const room = Math.max(0, ipam.free - reserve);
    out.push({
      size: room,
      limitedBy: "IPAM",
      message: `${ipam.free} pod IPs free (${ipam.provider}), ${reserve} kept in reserve (spec.guards.ipam.reserve ${spec.guards.ipam.reserve}): room for ${room}`,
    });
  }
  if (signals.nodeSlots !== undefined) {
    const room = Math.max(0, signals.nodeSlots);
    out.push({
      size: room,
      limitedBy: "NodeCapacity",
      message:
        room === 0
          ? "no free pod slots on nodes the template can use (check nodeSelector, tolerations, cordoned or NotReady nodes, allocatable pods)"
          : `${room} free pod slots on nodes the template can use`,
    });
  }
  if (signals.budget !== undefined) {
    const room = Math.max(0, signals.budget);
    out.push({ size: room, limitedBy: "Budget", message: `the cluster-wide write budget leaves ${room} pods for this rollout this wave` });
  }
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
