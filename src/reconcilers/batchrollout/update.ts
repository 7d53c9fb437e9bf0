import type { BatchRolloutSpec } from "../../api/batchrollout.ts";
import type { PodCensus } from "./census.ts";
import type { ObservedPod } from "./observed.ts";

/*
 * The update planner (spec.updateStrategy RollingRecreate): which pods on an older template a wave
 * replaces. Pure, like plan.ts, which calls it once per wave with what is left of the wave's budget.
 *
 * Replacement
 *   Pod names are ordinal-based, so a pod is replaced by deleting it and, once it is gone from the
 *   cache (a terminating pod still holds its name), creating the same ordinal from the current
 *   template. The create is the ordinary "missing ordinal" create of plan.ts, lowest first, in a
 *   later wave: nothing here remembers that an ordinal is being replaced, so a restart mid-update
 *   changes nothing. Pods whose hash equals the current template's are never touched, which is
 *   what makes a rollback (the previous template applied again) just another update.
 *
 * Budget
 *   A replacement costs two writes, its delete now and its create a wave later. A wave's deletes of
 *   old pods are at most REPLACEMENT_SHARE of the sizer's size (rounded up), and the wave's writes
 *   (scale-down deletes, creates, replacement deletes) never exceed the size: in steady state a wave
 *   creates what the last one deleted and deletes as many again, so the rate the sizer chose is the
 *   rate sent, and the first wave of an update is no burst of deletes.
 *
 * Availability
 *   Desired ordinals not available (census.ts: no pod, terminating, delete in flight, not Ready)
 *   never exceed maxUnavailable because of a replacement: deleting a Ready pod costs one unit of
 *   headroom, replacing a pod that is not Ready (failed, still starting) costs none, so those go
 *   first. Writes in flight count (expectations), so a lagging cache never hides a delete. Creates
 *   are never held by maxUnavailable: they only bring pods back.
 *
 * Order
 *   Within each group (not Ready first, then Ready), spec.updateStrategy.order: HighestFirst, as
 *   StatefulSet, or LowestFirst. Ordinals below spec.updateStrategy.partition are not candidates
 *   (census.ts leaves them out).
 */

/** Share of a wave's size that may go to deletes of old pods: each one brings its create a wave later. */
export const REPLACEMENT_SHARE = 0.5;

/** Percent of spec.replicas: a maxUnavailable of "25%" is 25 / PERCENT of the replicas. */
const PERCENT = 100;

/**
 * spec.updateStrategy.maxUnavailable as a pod count: a percentage of spec.replicas rounded down (as
 * Deployment's maxUnavailable), but at least 1, or no update of a small rollout could ever start.
 */
export function maxUnavailableCount(spec: Pick<BatchRolloutSpec, "replicas" | "updateStrategy">): number {
  const value = spec.updateStrategy.maxUnavailable;
  const count = typeof value === "number" ? value : Math.floor((spec.replicas * Number(value.slice(0, -1))) / PERCENT);
  return Math.max(1, count);
}

/** The most deletes of old pods a wave of `size` may send, given `used` writes it already spends. */
export function replacementBudget(size: number, used: number): number {
  if (size <= 0) return 0;
  // Rounded up: a wave of only deletes then uses at least half the rate, which the sizer reads as a
  // wave that used its rate (under half, it holds the rate instead of growing it).
  const share = Math.max(1, Math.ceil(size * REPLACEMENT_SHARE));
  return Math.max(0, Math.min(share, size - used));
}

export interface ReplacementInput {
  spec: Pick<BatchRolloutSpec, "replicas" | "updateStrategy">;
  pods: Pick<PodCensus, "outdated" | "progress">;
  /** Deletes of old pods this wave may send (replacementBudget). */
  budget: number;
}

export interface Replacements {
  /** Pods to delete now, in the order chosen. */
  pods: ObservedPod[];
  /** maxUnavailable held back pods the budget had room for. */
  boundByUnavailable: boolean;
  /** The bound, as a pod count. */
  maxUnavailable: number;
  /** Desired ordinals not available before this wave. */
  unavailable: number;
}

const available = (pod: ObservedPod) => pod.ready || pod.phase === "Succeeded";

/** Which old pods this wave deletes, within its budget and maxUnavailable. */
export function chooseReplacements(input: ReplacementInput): Replacements {
  const { spec, pods, budget } = input;
  const maxUnavailable = maxUnavailableCount(spec);
  const { unavailable } = pods.progress;
  const byOrder = spec.updateStrategy.order === "HighestFirst" ? (a: ObservedPod, b: ObservedPod) => b.ordinal - a.ordinal : (a: ObservedPod, b: ObservedPod) => a.ordinal - b.ordinal;
  const free = pods.outdated.filter((p) => !available(p)).sort(byOrder);
  const costly = pods.outdated.filter(available).sort(byOrder);

  const chosen = free.slice(0, Math.max(0, budget));
  const room = Math.max(0, budget - chosen.length);
  const headroom = Math.max(0, maxUnavailable - unavailable);
  chosen.push(...costly.slice(0, Math.min(room, headroom)));
  const boundByUnavailable = costly.length > headroom && room > headroom;
  return { pods: chosen, boundByUnavailable, maxUnavailable, unavailable };
}

/** Why a wave replaced no more pods than it did, for status.wave.message. */
export function unavailableMessage(r: Replacements, desired: number): string {
  const { unavailable, maxUnavailable, pods } = r;
  const now = pods.length > 0 ? `replacing ${pods.length} more` : "waiting for pods to become Ready";
  return `${unavailable} of ${desired} pods not Ready, spec.updateStrategy.maxUnavailable allows ${maxUnavailable}: ${now}`;
}
