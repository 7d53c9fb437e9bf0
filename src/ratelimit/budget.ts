// The cluster-wide write budget: one pod-write rate (writes/s) shared by every active rollout.
//
// Each rollout holds credit in pods. Credit accrues at the cluster rate, split by weight
// (spec.priority) with weighted max-min fairness: every rollout gets weight/Σweights of what accrues,
// except that no rollout banks more than BUDGET_BURST_PERIODS of its own share; what it cannot hold
// goes to the others by weight (water-filling), and what nobody can hold is dropped, because a budget
// is a rate, not a store. A wave may create floor(credit) pods; writes it did not use are handed back
// with release() and go to the other rollouts at once, so a rollout held back by its own guards
// (scheduler, IPAM) leaves its share to the busy ones.
//
// A newcomer starts with BUDGET_OPENING_PERIODS of its share, so its first wave goes out at once
// rather than one period later or after another rollout finishes. That opening credit is lent by the
// rollouts already there (their credit may go below zero) and repaid from their next accrual, so the
// total handed out never exceeds the rate × time, even when many rollouts start together.
//
// Time is an argument (`now`, ms), as for the sizer; nothing here reads a clock or sets a timer.

import type { Logger } from "pino";
import { MIN_WAVE_PERIOD_MS } from "./sizer/index.ts";

/** Weight of a rollout whose weight is missing or not positive: spec.priority's default. */
export const DEFAULT_BUDGET_WEIGHT = 1;
/**
 * Most credit a rollout banks, in periods of its share: enough to ride out one late reconcile,
 * too little to let a rollout that stopped asking save up a burst that would swamp the others.
 */
export const BUDGET_BURST_PERIODS = 2;
/** Credit a newcomer starts with, in periods of its share: one wave's worth, at once. */
export const BUDGET_OPENING_PERIODS = 1;
/**
 * A rollout that has not asked for this long has stopped (paused, finished, gone) without forget():
 * it leaves the budget, so its weight no longer dilutes the others' shares. Longer than any
 * requeue a waiting rollout uses, shorter than people notice a slow rollout.
 */
export const BUDGET_IDLE_TIMEOUT_MS = 30_000;
/** Pods below this are floating-point noise: 49.999999 pods of credit are 50. */
export const BUDGET_EPSILON = 1e-6;

export interface WriteBudgetOptions {
  /** The cluster's pod-write rate, writes/s; setRate() changes it. */
  perSecond: number;
  /** The wave period shares are sized for (wavePeriodMs of the specs; MIN_WAVE_PERIOD_MS by default). */
  periodMs?: number;
  logger?: Logger;
  /** When the budget starts accruing. */
  now: number;
}

export interface BudgetShare {
  rollout: string;
  weight: number;
  /** weight / Σ weights of the active rollouts. */
  fraction: number;
  /** fraction × the cluster rate. */
  perSecond: number;
  /** Pods banked (negative while repaying a newcomer's opening credit). */
  credit: number;
}

interface Member {
  weight: number;
  credit: number;
  lastSeen: number;
}

function validWeight(weight: number | undefined): number {
  return weight !== undefined && Number.isFinite(weight) && weight > 0 ? weight : DEFAULT_BUDGET_WEIGHT;
}

export class WriteBudget {
  #perSecond: number;
  readonly #periodMs: number;
  readonly #log: Logger | undefined;
  #lastAccrual: number;
  readonly #members = new Map<string, Member>();

  constructor(opts: WriteBudgetOptions) {
    this.#perSecond = Math.max(0, opts.perSecond);
    this.#periodMs = opts.periodMs ?? MIN_WAVE_PERIOD_MS;
    this.#log = opts.logger?.child({ component: "write-budget" });
    this.#lastAccrual = opts.now;
  }

  get perSecond(): number {
    return this.#perSecond;
  }

  /** A new cluster rate (e.g. the shared sizer's), effective from `now`; what accrued before is kept. */
  setRate(perSecond: number, now: number): void {
    this.#accrue(now);
    this.#perSecond = Math.max(0, perSecond);
  }

  /**
   * Pods the rollout may create in its next wave. Joins the rollout (opening credit) on its first
   * call and updates its weight on every call. What is returned is taken from its credit; hand back
   * what the wave did not send with release().
   */
  share(rollout: string, weight: number | undefined, now: number): number {
    this.#accrue(now);
    const w = validWeight(weight);
    let member = this.#members.get(rollout);
    if (!member) member = this.#join(rollout, w, now);
    else if (member.weight !== w) {
      this.#log?.info({ rollout, from: member.weight, to: w }, "rollout's budget weight changed");
      member.weight = w;
    }
    member.lastSeen = now;
    const grant = Math.max(0, Math.floor(member.credit + BUDGET_EPSILON));
    member.credit -= grant;
    return grant;
  }

  /**
   * Hands back pods of a grant the wave did not create. They go to the other rollouts by weight (up
   * to what each may bank); only what none of them can take returns to this rollout.
   */
  release(rollout: string, unused: number, now: number): void {
    if (!(unused > 0)) return;
    this.#accrue(now);
    const member = this.#members.get(rollout);
    if (!member) return;
    const others = [...this.#members.values()].filter((m) => m !== member);
    const left = this.#fill(unused, others);
    if (left > BUDGET_EPSILON) member.credit = Math.min(this.#cap(member), member.credit + left);
  }

  /** The rollout stopped (deleted, paused, done): its weight and credit leave the budget now. */
  forget(rollout: string): void {
    if (!this.#members.delete(rollout)) return;
    this.#log?.info({ rollout, rollouts: this.#members.size }, "rollout left the cluster write budget");
  }

  /** Every active rollout's share, for logs and status. */
  snapshot(now: number): BudgetShare[] {
    this.#accrue(now);
    const total = this.#totalWeight();
    return [...this.#members].map(([rollout, m]) => ({
      rollout,
      weight: m.weight,
      fraction: m.weight / total,
      perSecond: (this.#perSecond * m.weight) / total,
      credit: m.credit,
    }));
  }

  #totalWeight(): number {
    let total = 0;
    for (const m of this.#members.values()) total += m.weight;
    return total;
  }

  /** The rollout's share of one wave period, in pods. */
  #periodShare(member: Member, totalWeight = this.#totalWeight()): number {
    return (this.#perSecond * (this.#periodMs / 1_000) * member.weight) / totalWeight;
  }

  /** Most a rollout may bank; at least one pod, so a tiny share still adds up to a wave. */
  #cap(member: Member, totalWeight = this.#totalWeight()): number {
    return Math.max(1, BUDGET_BURST_PERIODS * this.#periodShare(member, totalWeight));
  }

  #join(rollout: string, weight: number, now: number): Member {
    const member: Member = { weight, credit: 0, lastSeen: now };
    const lenders = [...this.#members.values()];
    this.#members.set(rollout, member);
    const total = this.#totalWeight();
    const opening = BUDGET_OPENING_PERIODS * this.#periodShare(member, total);
    const lendersWeight = total - weight;
    for (const m of lenders) m.credit -= (opening * m.weight) / lendersWeight;
    member.credit = opening;
    this.#log?.info(
      { rollout, weight, rollouts: this.#members.size, sharePerSecond: (this.#perSecond * weight) / total, clusterPerSecond: this.#perSecond },
      "rollout joined the cluster write budget",
    );
    return member;
  }

  /** Credits what accrued since the last call, after dropping rollouts that stopped asking. */
  #accrue(now: number): void {
    for (const [rollout, m] of this.#members) {
      if (now - m.lastSeen > BUDGET_IDLE_TIMEOUT_MS) {
        this.#members.delete(rollout);
        this.#log?.info({ rollout, idleMs: now - m.lastSeen, rollouts: this.#members.size }, "rollout left the cluster write budget (idle)");
      }
    }
    const elapsed = now - this.#lastAccrual;
    if (elapsed <= 0) return;
    this.#lastAccrual = now;
    if (this.#members.size > 0) this.#fill((this.#perSecond * elapsed) / 1_000, [...this.#members.values()]);
  }

  /**
   * Weighted water-filling: shares `amount` among `recipients` by weight, none above its cap; what a
   * full one cannot take is shared again among the rest. Returns what nobody could take.
   */
  #fill(amount: number, recipients: Member[]): number {
    const total = this.#totalWeight();
    let left = amount;
    let open = recipients.filter((m) => m.credit < this.#cap(m, total));
    while (left > BUDGET_EPSILON && open.length > 0) {
      const weight = open.reduce((sum, m) => sum + m.weight, 0);
      let spill = 0;
      const stillOpen: Member[] = [];
      for (const m of open) {
        const give = (left * m.weight) / weight;
        const room = this.#cap(m, total) - m.credit;
        if (give >= room) {
          m.credit += room;
          spill += give - room;
        } else {
          m.credit += give;
          stillOpen.push(m);
        }
      }
      left = spill;
      open = stillOpen;
    }
    return left;
  }
}
