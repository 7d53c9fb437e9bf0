import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "./rate-limiter.ts";
import { timerDelay } from "./timer-delay.ts";

// The coordination.k8s.io/v1 Lease as leader election reads and writes it, its time format, and
// the clock leader election waits on.

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  [field: string]: unknown;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; [field: string]: unknown };
  spec?: LeaseSpec;
}

/** A candidate's identity: unique per process even when two share a hostname. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomUUID()}`;
}

/** metav1.MicroTime's wire format, "2006-01-02T15:04:05.000000Z". */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Milliseconds since the epoch, or undefined when absent or unparsable. */
export function parseMicroTime(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The fields client-go's LeaderElectionRecord compares to tell a live holder from a silent one. */
export function recordOf(lease: Lease): string {
  const s = lease.spec ?? {};
  return JSON.stringify([s.holderIdentity ?? "", s.leaseDurationSeconds ?? 0, s.acquireTime ?? "", s.renewTime ?? "", s.leaseTransitions ?? 0]);
}

/** Time and waiting, injected so tests can drive the election without real time. */
export interface LeaderElectionClock extends Clock {
  /** Resolves after `ms`, or as soon as the signal aborts; never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * Wall-clock time and ordinary timers. The timers are deliberately not unref'd: a standby waiting
 * for the Lease has nothing else keeping the process alive.
 */
export const realElectionClock: LeaderElectionClock = {
  now: () => Date.now(),
  sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, timerDelay(ms));
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  },
};
