import { z } from "zod";
import { Duration } from "./duration.ts";
import { UPDATE_STRATEGY_RULES, WAVE_RULES, reservedTemplateLabelsRule, withRules } from "./crd-rules.ts";

// The BatchRollout API, batchrollout.dev/v1alpha1. These schemas are the one source of truth:
// TypeScript types are inferred from them and the CRD in crds/ is generated from them
// (scripts/gen-crd.ts); cross-field rules that the API server must enforce live in crd-rules.ts.

export const GROUP = "batchrollout.dev";
export const VERSION = "v1alpha1";
export const KIND = "BatchRollout";
export const PLURAL = "batchrollouts";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Labels every pod of a rollout carries. */
export const LABEL_NAME = `${GROUP}/name`;
export const LABEL_ORDINAL = `${GROUP}/ordinal`;
export const LABEL_TEMPLATE_HASH = `${GROUP}/template-hash`;
export const FINALIZER = `${GROUP}/pods`;

/** Largest rollout we accept: ordinals must stay readable in pod names and status counts sane. */
export const MAX_REPLICAS = 1_000_000;

const Count = z.int().min(0).max(MAX_REPLICAS);

export const WaveStrategy = z.enum(["Adaptive", "Fixed"]);

export const Waves = withRules(
  z
    .object({
      strategy: WaveStrategy.default("Adaptive").describe(
        "Adaptive sizes each wave from live cluster signals; Fixed creates initialSize pods per wave.",
      ),
      initialSize: z.int().min(1).max(MAX_REPLICAS).default(50).describe("Size of the first wave (every wave, for Fixed)."),
      minSize: z.int().min(1).max(MAX_REPLICAS).default(10).describe("Adaptive waves never shrink below this, unless a guard caps them; while the sizer yields to another writer's load it sends them more slowly instead."),
      maxSize: z.int().min(1).max(MAX_REPLICAS).default(2000).describe("Adaptive waves never grow above this."),
      minInterval: Duration.default("1s").describe("Least time between the starts of two waves."),
    })
    .describe("How pods are created (and deleted) in waves. Adaptive requires minSize <= initialSize <= maxSize."),
  WAVE_RULES,
);

export const SchedulerScope = z.enum(["Rollout", "Cluster"]);
export const IpamProvider = z.enum(["Auto", "NodePodCIDR", "Calico", "Cilium", "Whereabouts", "AwsVpcCni", "None"]);

/** A count of addresses, or a percentage of the pool from "0%" to "100%". */
export const IntOrPercent = z.union([
  z.int().min(0),
  z.string().regex(/^(100|[1-9]?[0-9])%$/, 'must be a count or a percentage from "0%" to "100%", such as "5%"'),
]);

export const Guards = z.object({
  apiServer: z
    .object({
      latencyTarget: Duration.default("1s").describe("Write latency (p90) above which waves shrink."),
    })
    .prefault({}),
  scheduler: z
    .object({
      maxPending: z.int().min(0).max(MAX_REPLICAS).default(500).describe("No new wave while this many pods wait for the scheduler."),
      scope: SchedulerScope.default("Rollout").describe("Count pending pods of this rollout only, or of the whole cluster."),
    })
    .prefault({}),
  kubelet: z
    .object({
      maxStarting: z
        .int()
        .min(0)
        .max(MAX_REPLICAS)
        .default(500)
        .describe(
          "No new wave while this many of the rollout's pods are bound to a node but not yet Running (image pull, CNI setup, container start). Raise it for images that take long to pull.",
        ),
    })
    .prefault({}),
  ipam: z
    .object({
      provider: IpamProvider.default("Auto"),
      reserve: IntOrPercent.default("5%").describe("Pod IPs kept free for everyone else."),
      metricsURL: z.url().optional().describe("ipamd metrics endpoint, for provider AwsVpcCni."),
    })
    .prefault({}),
});

export const FailureAction = z.enum(["Pause", "Continue"]);

export const FailurePolicy = z
  .object({
    maxFailedPods: z.int().min(0).max(MAX_REPLICAS).default(50).describe("Failed pods tolerated before the action is taken."),
    action: FailureAction.default("Pause").describe(
      "Pause stops creating pods once more than maxFailedPods have failed; Continue only reports it.",
    ),
  })
  .describe("Failed pods are kept for inspection and never replaced; this says when to stop creating more.");

export const UpdateStrategyType = z.enum(["RollingRecreate", "OnDelete"]);
export const UpdateOrder = z.enum(["HighestFirst", "LowestFirst"]);

/** A count of pods from 1, or a percentage of spec.replicas from "1%" to "100%". */
export const PositiveIntOrPercent = z.union([
  z.int().min(1).max(MAX_REPLICAS),
  z.string().regex(/^(100|[1-9][0-9]?)%$/, 'must be a count from 1 or a percentage from "1%" to "100%", such as "25%"'),
]);

/**
 * What happens to running pods when spec.template changes. The default follows Deployment and
 * StatefulSet: a GitOps user who changes the image expects the fleet to follow (README, "Updates").
 */
export const UpdateStrategy = withRules(
  z
    .object({
      type: UpdateStrategyType.default("RollingRecreate").describe(
        "RollingRecreate replaces pods on an older template in paced waves (delete, then create the same ordinal from the current template); OnDelete leaves running pods alone and only new pods use the current template.",
      ),
      maxUnavailable: PositiveIntOrPercent.default("25%").describe(
        "Most pods of ordinals 0..replicas-1 not Ready at once (missing, terminating, starting or failed, old and new together) that an update may cause; a percentage of spec.replicas, rounded down, at least 1. RollingRecreate only.",
      ),
      partition: z
        .int()
        .min(0)
        .max(MAX_REPLICAS)
        .default(0)
        .describe("Ordinals below it keep their template, as StatefulSet's partition: lower it step by step for a canary by hand. RollingRecreate only."),
      order: UpdateOrder.default("HighestFirst").describe("Which ordinals an update replaces first (StatefulSet goes highest first). RollingRecreate only."),
    })
    .describe("How pods follow a change of spec.template."),
  UPDATE_STRATEGY_RULES,
);

const StringMap = z.record(z.string(), z.string());

/**
 * A PodTemplateSpec. The fields the operator relies on are checked here; the rest of the pod spec
 * is passed through and judged by the API server when the pod is created.
 */
export const PodTemplate = withRules(
  z
    .object({
      metadata: z
        .object({ labels: StringMap.optional(), annotations: StringMap.optional() })
        .optional()
        .describe(`Labels and annotations for every pod; labels under ${GROUP}/ are the operator's.`),
      spec: z
        .looseObject({
          containers: z
            .array(z.looseObject({ name: z.string().min(1), image: z.string().min(1) }))
            .min(1, "a pod template needs at least one container"),
        })
        .describe("A core/v1 PodSpec, checked in full by the API server when a pod is created."),
    })
    .describe("The template of every pod. How running pods follow a change is spec.updateStrategy."),
  [reservedTemplateLabelsRule(`${GROUP}/`)],
);

export const BatchRolloutSpec = z.object({
  replicas: Count.describe("Pods to run, named <name>-<ordinal> for ordinal 0..replicas-1."),
  template: PodTemplate,
  paused: z.boolean().default(false).describe("No pod is created or deleted while paused."),
  priority: z.int().min(1).max(100).default(1).describe("Weight of this rollout's share of the cluster's write budget."),
  waves: Waves.prefault({}),
  guards: Guards.prefault({}).describe("Cluster signals that bound each wave."),
  failurePolicy: FailurePolicy.prefault({}),
  updateStrategy: UpdateStrategy.prefault({}),
});

// ---- status ----

/** Which bound decided the size of the current wave (or why there is none). */
export const LimitedBy = z.enum([
  "None", // nothing to do
  "Fixed", // Fixed strategy
  "Rate", // the adaptive rate (AIMD / latency gradient) at its current value
  "ApiServer", // 429s or Retry-After from the API server
  "Latency", // write latency above the target
  "Yielding", // yielding to others launching pods beside it while the write latency is high
  "Scheduler", // too many pods waiting for the scheduler
  "Kubelet", // too many pods bound to nodes but not yet started
  "IPAM", // pod IP headroom minus reserve
  "NodeCapacity", // allocatable pod slots on eligible nodes
  "Budget", // the cluster-wide write budget shared with other rollouts
  "Remaining", // fewer pods left than the wave could take
  "MinInterval", // no longer written: the wait for minInterval is status.wave.nextTime (kept so older objects stay valid)
  "Paused", // spec.paused
  "FailurePolicy", // too many failed pods
  "Deleting", // the rollout is being deleted
  "TemplateRejected", // the API server refused a pod from the current spec as invalid
  "CreateRefused", // the API server refused to create pods: a quota, Pod Security, an admission webhook
  "MaxUnavailable", // an update may not take more pods out of service (spec.updateStrategy.maxUnavailable)
]);

export const Condition = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string(),
  reason: z.string(),
  message: z.string(),
});

export const WaveStatus = z.object({
  number: z.int().min(0).describe("Waves started so far."),
  size: z.int().min(0).describe("Pods the current wave creates or deletes."),
  limitedBy: LimitedBy,
  message: z.string().optional().describe("Why the wave has this size, in words a person can act on."),
  startTime: z.string().optional(),
  nextTime: z
    .string()
    .optional()
    .describe("While the rollout waits for spec.waves.minInterval: when the next wave may start. limitedBy and message still describe the last wave."),
});

export const SignalsStatus = z.object({
  apiServer: z
    .object({
      flowSchema: z.string().optional().describe("APF FlowSchema the operator's pod writes match."),
      priorityLevel: z.string().optional().describe("APF priority level they are queued in."),
      writeLatencyP90Ms: z.number().min(0).optional(),
      throttled: z.int().min(0).optional().describe("429 responses seen by this rollout's writes."),
      retryAfterSeconds: z.number().min(0).optional(),
      metrics: z
        .enum(["Ok", "Idle", "Failing", "Forbidden", "Disabled"])
        .optional()
        .describe("kube-apiserver /metrics scrape: Forbidden means client-side signals only."),
      inQueue: z.int().min(0).optional().describe("Requests queued in the priority level at the last scrape."),
      waitP99Ms: z.number().min(0).optional().describe("p99 APF queue wait between the last two scrapes."),
      rejected: z.int().min(0).optional().describe("Requests of the priority level APF rejected between the last two scrapes."),
      message: z.string().optional(),
    })
    .optional(),
  scheduler: z
    .object({
      pending: z.int().min(0).describe("Unbound pods in spec.guards.scheduler.scope."),
      unschedulable: z.int().min(0).optional(),
      gated: z.int().min(0).optional(),
      notYetTried: z.int().min(0).optional(),
      message: z.string().optional().describe("The scheduler's message for an unschedulable pod."),
    })
    .optional(),
  kubelet: z
    .object({
      starting: z.int().min(0).describe("This rollout's pods bound to a node and not yet Running, and its creates in flight."),
    })
    .optional(),
  ipam: z
    .object({
      provider: z.string(),
      free: z.int().min(0).optional(),
      capacity: z.int().min(0).optional(),
      nodeSlots: z.int().min(0).optional().describe("Free pod slots on nodes the template can use."),
      message: z.string().optional(),
    })
    .optional(),
});

export const BatchRolloutStatus = z.object({
  observedGeneration: z.int().min(0).optional().describe("The metadata.generation this status describes."),
  replicas: Count.default(0).describe("Pods of this rollout that exist and are not being deleted."),
  updatedReplicas: Count.default(0).describe("Of those, pods created from the current template (updateTemplateHash)."),
  updatedReadyReplicas: Count.default(0).describe("Of those, pods on the current template whose Ready condition is True."),
  scheduledReplicas: Count.default(0).describe("Of those, pods bound to a node."),
  runningReplicas: Count.default(0).describe("Of those, pods in phase Running."),
  readyReplicas: Count.default(0).describe("Of those, pods whose Ready condition is True."),
  succeededReplicas: Count.default(0).describe("Of those, pods in phase Succeeded."),
  failedReplicas: Count.default(0).describe("Of those, pods in phase Failed; they are kept and not replaced."),
  selector: z.string().optional().describe("Label selector of the pods, for the scale subresource."),
  updateTemplateHash: z
    .string()
    .optional()
    .describe("Hash of spec.template, as the batchrollout.dev/template-hash label of the pods created from it (StatefulSet's updateRevision)."),
  currentTemplateHash: z
    .string()
    .optional()
    .describe(
      "The template hash most pods of ordinals 0..replicas-1 not yet on updateTemplateHash carry; equal to updateTemplateHash once every such pod runs it (StatefulSet's currentRevision). With a partition it stays on the old hash while pods below the partition keep it.",
    ),
  wave: WaveStatus.optional(),
  signals: SignalsStatus.optional(),
  conditions: z
    .array(Condition)
    .optional()
    .describe("Ready, Progressing and Stalled, kstatus-compatible.")
    // One entry per type, merged by type under server-side apply, as metav1.Condition lists are.
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] }),
});

export const ObjectMeta = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  finalizers: z.array(z.string()).optional(),
  labels: StringMap.optional(),
  annotations: StringMap.optional(),
});

export const BatchRollout = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMeta,
  spec: BatchRolloutSpec,
  status: BatchRolloutStatus.optional(),
});

export type BatchRolloutSpec = z.infer<typeof BatchRolloutSpec>;
export type BatchRolloutStatus = z.infer<typeof BatchRolloutStatus>;
export type BatchRollout = z.infer<typeof BatchRollout>;
export type PodTemplate = z.infer<typeof PodTemplate>;
export type Condition = z.infer<typeof Condition>;
export type WaveStatus = z.infer<typeof WaveStatus>;
export type SignalsStatus = z.infer<typeof SignalsStatus>;
export type LimitedBy = z.infer<typeof LimitedBy>;
export type WaveStrategy = z.infer<typeof WaveStrategy>;
export type IpamProvider = z.infer<typeof IpamProvider>;
export type UpdateStrategy = z.infer<typeof UpdateStrategy>;
export type SchedulerScope = z.infer<typeof SchedulerScope>;
