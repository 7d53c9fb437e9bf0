import type { LimitedBy } from "../../api/batchrollout.ts";
import { EventReason, EventType } from "./conditions.ts";
import type { PlanEvent, SizerDecision } from "./plan.ts";

// What a wave says of itself: its status.wave.message and the event that opens it (plan.ts).

/** Ordinal ranges spelled out in an event message before the rest is summarised. */
export const MAX_RANGES_IN_MESSAGE = 5;

/** "3-7, 9, 12-15" */
export function describeOrdinals(ordinals: readonly number[]): string {
  const ranges: string[] = [];
  let i = 0;
  while (i < ordinals.length && ranges.length < MAX_RANGES_IN_MESSAGE) {
    const first = ordinals[i] as number;
    let last = first;
    const step = Math.sign((ordinals[i + 1] ?? first) - first) || 1;
    while (ordinals[i + 1] === last + step) last = ordinals[++i] as number;
    ranges.push(first === last ? `${first}` : `${first}-${last}`);
    i++;
  }
  const rest = ordinals.length - i;
  return rest > 0 ? `${ranges.join(", ")} and ${rest} more` : ranges.join(", ");
}

function ordinalOf(name: string): string {
  return name.slice(name.lastIndexOf("-") + 1);
}

export function waveMessage(limitedBy: LimitedBy, decision: SizerDecision, size: number, remaining: number): string {
  if (limitedBy === "Remaining") return `the last ${size} pods`;
  if (limitedBy === "Deleting") return `deleting ${size} of ${remaining} pods, wave bounded by ${decision.limitedBy}`;
  return decision.message ?? `${size} of ${remaining} pods, bounded by ${limitedBy}`;
}

export function waveEvent(
  number: number,
  creates: number[],
  deletes: string[],
  replaces: readonly { ordinal: number }[],
  deleting: boolean,
  desired: number,
  limitedBy: LimitedBy,
): PlanEvent {
  const deleted = describeOrdinals(deletes.map((name) => Number(ordinalOf(name))));
  if (deleting) {
    return { type: EventType.Normal, reason: EventReason.DeletingPods, message: `wave ${number}: deleting ${deletes.length} pods (ordinals ${deleted})` };
  }
  if (replaces.length > 0) {
    const parts = [`replacing ${replaces.length} pods on an older template (ordinals ${describeOrdinals(replaces.map((p) => p.ordinal))})`];
    if (creates.length > 0) parts.push(`creating ${creates.length} (ordinals ${describeOrdinals(creates)})`);
    if (deletes.length > 0) parts.push(`deleting ${deletes.length} above spec.replicas=${desired} (ordinals ${deleted})`);
    return { type: EventType.Normal, reason: EventReason.WaveStarted, message: `wave ${number}: ${parts.join(", ")}, limited by ${limitedBy}` };
  }
  if (creates.length === 0) {
    return {
      type: EventType.Normal,
      reason: EventReason.ScaledDown,
      message: `wave ${number}: deleting ${deletes.length} pods above spec.replicas=${desired} (ordinals ${deleted}), limited by ${limitedBy}`,
    };
  }
  const also = deletes.length > 0 ? ` and deleting ${deletes.length} (ordinals ${deleted})` : "";
  return {
    type: EventType.Normal,
    reason: EventReason.WaveStarted,
    message: `wave ${number}: creating ${creates.length} pods (ordinals ${describeOrdinals(creates)})${also}, limited by ${limitedBy}`,
  };
}
