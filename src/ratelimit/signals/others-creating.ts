// How fast others launch pods: another writer creating pods beside our rollouts shares the API
// server's queue with us, and the wave sizer yields to it while that queue is past its ceiling
// (WaveSignals.othersCreating). Counted as the unscheduled-pods cache (SchedulerSignal) first sees
// each pod that no rollout of this operator owns: every pod the scheduler must place passes through it.

import { LABEL_NAME } from "../../api/batchrollout.ts";
import type { InformerHandlers } from "../../controllers/informer.ts";
import { CreationRate } from "./creation-rate.ts";

/** All this signal reads of a pod: whether a BatchRollout owns it. */
interface LabelledPod {
  metadata: { labels?: Record<string, string> };
}

/** A cache of unscheduled pods and its arrivals: SchedulerSignal, or a test's stand-in. */
export interface UnscheduledPodArrivals {
  readonly hasSynced: boolean;
  addHandlers(handlers: Pick<InformerHandlers<LabelledPod>, "onAdd">): void;
}

export interface OthersCreatingSignalOptions {
  /** Subscribed to at construction, so construct before the cache starts. */
  pods: UnscheduledPodArrivals;
  clock?: () => number;
  windowMs?: number;
}

export class OthersCreatingSignal {
  readonly #pods: UnscheduledPodArrivals;
  readonly #clock: () => number;
  readonly #rate: CreationRate;

  constructor(opts: OthersCreatingSignalOptions) {
    this.#pods = opts.pods;
    this.#clock = opts.clock ?? Date.now;
    this.#rate = new CreationRate(opts.windowMs);
    this.#pods.addHandlers({
      // The first list holds pods created before we looked, not a rate; a pod arriving later is new.
      onAdd: (pod) => {
        if (this.#pods.hasSynced && pod.metadata.labels?.[LABEL_NAME] === undefined) this.#rate.record(this.#clock());
      },
    });
  }

  /**
   * Pods per second that something other than a BatchRollout has been creating in the operator's
   * scope, over the last CREATION_RATE_WINDOW_MS; undefined until the cache has synced. Pods created
   * already bound (spec.nodeName set by their creator) never wait for the scheduler and are not seen.
   */
  perSecond(): number | undefined {
    return this.#pods.hasSynced ? this.#rate.perSecond(this.#clock()) : undefined;
  }
}
