import type { Figures, StressorFigures } from "./figures.ts";
import type { Classification } from "./identities.ts";
import type { WriterOutcome } from "./methods/method.ts";
import type { Sample } from "./samples.ts";

// The shape of bench/results/<date>-<mode>.json.

export interface MethodResult {
  id: string;
  label: string;
  namespace: string;
  /** Pods the method had to create. */
  pods: number;
  startedAt: number;
  endedAt: number;
  timedOut: boolean;
  /** Why the method could not run to the end, if it could not. */
  error?: string;
  writer?: WriterOutcome;
  notes: string[];
  figures: Figures;
  /** Distinct pods of the method's namespace the test bed's kubelet (kwok) played twice, from its log. */
  kwokReplayed?: number;
  stressor?: StressorFigures;
  samples: Sample[];
}

export interface TargetCheck {
  name: string;
  /** What was measured, in words, with the numbers. */
  detail: string;
  ratio?: number;
  verdict: "PASS" | "FAIL" | "SKIP";
}

export interface RunResult {
  date: string;
  mode: string;
  n: number;
  nodes: number;
  runId: string;
  versions: Record<string, string>;
  machine: { cpus: number; /** Before the cluster came up: what else was running. */ loadAverageAtStart?: number[]; loadAverage: number[]; caveat: string };
  identities: { writer: Classification; bystander: Classification; replicaSetController?: Classification; note: string };
  methods: MethodResult[];
  targets: TargetCheck[];
}
