import { z } from "zod";

// The operator's configuration: command-line flags, each with an environment variable
// (BATCHROLLOUT_<FLAG_IN_UPPER_SNAKE_CASE>) for the Helm chart. The flag wins over the variable.

/** /metrics over HTTPS behind TokenReview and SubjectAccessReview: kubebuilder's port for it. */
export const METRICS_SECURE_PORT = 8443;
/** /metrics over plain HTTP: controller-runtime's port before it went secure. */
export const METRICS_PLAIN_PORT = 8080;

const OperatorFlags = z.object({
  kubeconfig: z.string().optional().describe("kubeconfig file; default: KUBECONFIG, ~/.kube/config or in-cluster"),
  watchNamespace: z.string().optional().describe("Namespace to watch; default: all namespaces"),
  workers: z.coerce.number().int().min(1).max(64).default(4).describe("Rollouts reconciled in parallel"),
  metricsPort: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .optional()
    .describe(`Port of /metrics (0 = off); default ${METRICS_SECURE_PORT} with --metrics-secure, ${METRICS_PLAIN_PORT} without`),
  metricsSecure: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true")
    .describe(
      "Serve /metrics over HTTPS to bearer tokens allowed to get /metrics (TokenReview, SubjectAccessReview); false: plain HTTP, no authentication",
    ),
  metricsCertDir: z
    .string()
    .min(1)
    .optional()
    .describe("Directory holding tls.crt and tls.key for /metrics (e.g. a cert-manager Secret), re-read when they change; default: a self-signed certificate made at start"),
  healthPort: z.coerce.number().int().min(0).max(65535).default(8081).describe("Port of /healthz and /readyz (0 = off)"),
  bindAddress: z.string().default("0.0.0.0").describe("Address the metrics and health servers listen on"),
  leaderElect: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true")
    .describe("Run only while holding the leader Lease"),
  leaderElectionNamespace: z.string().default("batchrollout-system").describe("Namespace of the leader Lease"),
  leaderElectionId: z.string().default("batchrollout-operator").describe("Name of the leader Lease"),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  schedulerMetricsUrl: z.url().optional().describe("kube-scheduler /metrics, for scheduler_pending_pods (optional)"),
  schedulerMetricsInsecure: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true")
    .describe("Skip TLS verification of the scheduler metrics URL (its serving certificate is often self-signed)"),
  apiServerMetrics: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true")
    .describe("Scrape kube-apiserver /metrics for the APF guardrail when RBAC allows"),
});

/** The flags, validated, with the defaults that depend on other flags filled in. */
export const OperatorConfig = OperatorFlags.superRefine((c, ctx) => {
  // A certificate given for plain HTTP would be silently unused: say so instead.
  if (c.metricsCertDir !== undefined && !c.metricsSecure) ctx.addIssue({ code: "custom", path: ["metricsCertDir"], message: "needs --metrics-secure=true (plain HTTP serves no certificate)" });
}).transform((c) => ({ ...c, metricsPort: c.metricsPort ?? (c.metricsSecure ? METRICS_SECURE_PORT : METRICS_PLAIN_PORT) }));

export type OperatorConfig = z.output<typeof OperatorConfig>;

const toEnvName = (flag: string) => `BATCHROLLOUT_${flag.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
const toFlagName = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * Reads `--flag=value` / `--flag value` arguments and BATCHROLLOUT_* variables. Unknown flags and
 * invalid values fail with a message naming the flag, so a typo never silently takes a default.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): OperatorConfig {
  const keys = Object.keys(OperatorFlags.shape);
  const byFlag = new Map(keys.map((k) => [toFlagName(k), k]));
  const raw: Record<string, string> = {};
  for (const key of keys) {
    const value = env[toEnvName(key)];
    if (value !== undefined) raw[key] = value;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`);
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const key = byFlag.get(flag);
    if (!key) throw new Error(`unknown flag --${flag}; known flags: ${[...byFlag.keys()].map((f) => `--${f}`).join(", ")}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag --${flag} needs a value`);
    raw[key] = value;
  }
  const parsed = OperatorConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "");
      return `--${toFlagName(key)} (${toEnvName(key)}): ${issue.message}`;
    });
    throw new Error(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
  return parsed.data;
}

export function configUsage(): string {
  return Object.entries(OperatorFlags.shape)
    .map(([key, schema]) => `  --${toFlagName(key).padEnd(28)} ${schema.description ?? ""} [${toEnvName(key)}]`)
    .join("\n");
}
