import type { z } from "zod";
import type { IntOrPercent } from "../../api/batchrollout.ts";

/** spec.guards.ipam.reserve as validated by the API schema: a count, or a string such as "5%". */
export type ReserveSpec = z.infer<typeof IntOrPercent>;

/** A percentage above this is read as this: a reserve cannot exceed the whole pool. */
export const MAX_RESERVE_PERCENT = 100;

/**
 * Addresses to keep free for everyone else. A percentage is of the pool's capacity (every usable
 * address, used or not), rounded up so a small pool still keeps at least one address back. When the
 * capacity is unknown the percentage is taken of the free addresses, the only size we have.
 */
export function reserveCount(reserve: ReserveSpec, capacity: number | undefined, free: number): number {
  if (typeof reserve === "number") return Math.max(0, Math.floor(reserve));
  const percent = Math.min(MAX_RESERVE_PERCENT, Number(reserve.slice(0, -1)));
  const base = capacity ?? free;
  // Integer arithmetic first: (capacity * percent) / 100 rounds up exactly, no 0.1 + 0.2 surprises.
  return Math.ceil((Math.max(0, base) * percent) / 100);
}

/** Pods that may still take an address: free minus the reserve, never negative. */
export function headroomAfterReserve(free: number, reserve: number): number {
  return Math.max(0, free - reserve);
}
