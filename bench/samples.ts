// The data a run records, as written to bench/results/<date>-<mode>.json.

/** One second of one method; `t` is the end of the second, counted from the method's start. */
export interface Sample {
  t: number;
  at: number;
  /** Cumulative pod counts of the method's namespace, from the pod watch. */
  pods?: { created: number; scheduled: number; running: number; unscheduled: number };
  /** Stressor only: the second writer's pods in its own namespace, cumulative. */
  secondWriterPods?: { created: number; running: number };
  /** Our own writer's responses in this second (storm, seed batches, stressor): from KubeClient.onResponse. */
  writer?: { responses: number; throttled: number; retryAfterS: number[]; postP99Ms?: number };
  /**
   * APF per priority level, from kube-apiserver's dump_priority_levels every second: requests waiting
   * in queues and executing (gauges), rejections in this second.
   */
  apf?: {
    workloadLowWaiting: number;
    workloadLowExecuting: number;
    workloadLowRejected: number;
    /** When the method's writer is in another priority level (a Deployment's replicaset controller). */
    writerLevelWaiting?: number;
    writerLevelRejected?: number;
  };
  /** The writer's own flow schema, from /metrics every few seconds: rejections since the previous reading. */
  apfWriterFlow?: { rejected: number; inQueue: number };
  /** kube-scheduler's scheduler_pending_pods, all queues, and by queue. */
  scheduler?: { pending: number; byQueue: Record<string, number> };
  /** The operator's own /metrics. */
  operator?: {
    requests: number;
    throttled: number;
    eventLoopLagP99Ms?: number;
    eventLoopLagMaxMs?: number;
    writeRatePerS?: number;
    writeConcurrency?: number;
    waveSize?: number;
    writeLatencyP90Ms?: number;
  };
  /** The BatchRollout's status, as the operator wrote it. */
  rollout?: {
    replicas: number;
    wave: number;
    waveSize: number;
    limitedBy: string;
    message?: string;
    /** status.signals: what the operator itself measured. */
    writeLatencyP90Ms?: number;
    throttled?: number;
    retryAfterS?: number;
    schedulerPending?: number;
  };
  /** CPU seconds (cumulative) and RSS (MB) per process. */
  proc: Record<string, { cpuS: number; rssMB: number }>;
  /** The bystander's requests started in this second. */
  bystander?: { requests: number; errors: number; p50Ms?: number; p99Ms?: number };
}

export interface BystanderRecord {
  at: number;
  ms: number;
  op: string;
  code: number;
  error?: string;
}

export interface WriterRecord {
  at: number;
  ms: number;
  code: number;
  method: string;
  retryAfter?: number;
}
