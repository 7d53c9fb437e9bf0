import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CHART_DIR, find, helmBinary, renderChart, type Manifest } from "./render.ts";

// The chart's values and what they render: a strict schema, the keys users expect, ports that
// follow the flag, the optional parts off by default and all of them together
// (metrics.test.ts: what secure metrics add).

const execFileAsync = promisify(execFile);
const ALL_OPTIONS = join(CHART_DIR, "ci/all-options-values.yaml");
const OPTIONAL_KINDS = ["Service", "ServiceMonitor", "PrometheusRule", "ConfigMap", "FlowSchema", "PriorityLevelConfiguration"];

interface Container {
  name: string;
  args: string[];
  env?: { name: string; value?: string }[];
  ports: { name: string; containerPort: number }[];
}
interface PodSpec {
  serviceAccountName: string;
  containers: Container[];
  imagePullSecrets?: { name: string }[];
  priorityClassName?: string;
}
interface Deployment extends Manifest {
  spec: { replicas: number; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
}
const deploymentOf = (manifests: Manifest[]) => find(manifests, "Deployment") as Deployment;
const operatorOf = (manifests: Manifest[]) => deploymentOf(manifests).spec.template.spec.containers[0] as Container;

async function renderError(set: string[]): Promise<string> {
  return renderChart({ set }).then(
    () => "rendered",
    (err: unknown) => String((err as { stderr?: string }).stderr ?? err),
  );
}

describe("values.schema.json", () => {
  it("refuses wrong types, out-of-range numbers, unknown keys and flags the chart sets itself", async () => {
    expect(await renderError(["replicas=two"])).toMatch(/\/replicas.*want integer/);
    expect(await renderError(["workers=0"])).toMatch(/\/workers.*minimum/);
    expect(await renderError(["replica=2"])).toMatch(/additional properties 'replica' not allowed/);
    expect(await renderError(["metrics.prot=9090"])).toMatch(/additional properties 'prot' not allowed/);
    expect(await renderError(["extraArgs[0]=--metrics-port=9090"])).toMatch(/extraArgs\/0/);
    expect(await renderError(["extraArgs[0]=--metrics-secure=false"])).toMatch(/extraArgs\/0/);
    expect(await renderError(["extraArgs[0]=--metrics-cert-dir=/certs"])).toMatch(/extraArgs\/0/);
    expect(await renderError(["metrics.port=0"])).toMatch(/metrics\/port/);
    expect(await renderError(["metrics.secure=no"])).toMatch(/metrics\/secure/);
    expect(await renderError(["metrics.secure=false", "metrics.certSecret=tls"])).toMatch(/metrics.certSecret needs metrics.secure=true/);
    expect(await renderError(["image.digest=latest"])).toMatch(/image\/digest/);
  });

  it("passes helm lint --strict with the defaults and with every option", async () => {
    const helm = await helmBinary();
    await execFileAsync(helm, ["lint", "--strict", CHART_DIR]);
    await execFileAsync(helm, ["lint", "--strict", CHART_DIR, "--values", ALL_OPTIONS]);
  });
});

describe("the rendered chart", () => {
  it("labels every object with helm.sh/chart and leaves the optional parts out by default", async () => {
    const manifests = await renderChart();
    for (const m of manifests) expect(m.metadata.labels?.["helm.sh/chart"], `${m.kind} ${m.metadata.name}`).toBe("batchrollout-0.1.0");
    expect(manifests.filter((m) => OPTIONAL_KINDS.includes(m.kind)).map((m) => m.kind)).toEqual([]);
    expect(find(manifests, "PodDisruptionBudget")).toBeDefined();
    expect(find(await renderChart({ set: ["replicas=1"] }), "PodDisruptionBudget")).toBeUndefined();
  });

  it.each([
    { set: [], port: 8443, secure: true },
    { set: ["metrics.secure=false"], port: 8080, secure: false },
    { set: ["metrics.port=9090"], port: 9090, secure: true },
    { set: ["metrics.secure=false", "metrics.port=9090"], port: 9090, secure: false },
    { set: ["metrics.secure=true", "metrics.port=8080"], port: 8080, secure: true },
  ])("derives --metrics-port, the container, Service and ServiceMonitor ports and the scheme from $set", async ({ set, port, secure }) => {
    const manifests = await renderChart({ set: [...set, "health.port=9091", "metrics.service.enabled=true", "metrics.serviceMonitor.enabled=true"] });
    const operator = operatorOf(manifests);
    expect(operator.args).toEqual(expect.arrayContaining([`--metrics-secure=${secure}`, `--metrics-port=${port}`, "--health-port=9091"]));
    expect(operator.args.filter((a) => a.startsWith("--metrics-port="))).toHaveLength(1);
    expect(operator.ports).toEqual([{ name: "metrics", containerPort: port }, { name: "health", containerPort: 9091 }]);
    const service = find(manifests, "Service") as Manifest & { spec: { ports: { name: string; port: number; targetPort: string }[] } };
    expect(service.spec.ports).toEqual([{ name: "metrics", port, targetPort: "metrics" }]);
    const monitor = find(manifests, "ServiceMonitor") as Manifest & { spec: { endpoints: { port: string; scheme: string }[] } };
    expect(monitor.spec.endpoints).toMatchObject([{ port: "metrics", path: "/metrics", scheme: secure ? "https" : "http" }]);
  });

  it("honours the common keys", async () => {
    const manifests = await renderChart({ values: [ALL_OPTIONS] });
    const deployment = deploymentOf(manifests);
    const pod = deployment.spec.template;
    expect(deployment.metadata.name).toBe("batchrollout-all");
    expect(pod.metadata.labels).toMatchObject({ team: "platform" });
    expect(pod.metadata.annotations).toEqual({ "example.com/scrape": "true" });
    expect(pod.spec.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.spec.priorityClassName).toBe("system-cluster-critical");
    expect(pod.spec.serviceAccountName).toBe("batchrollout-all-operator");
    expect(find(manifests, "ServiceAccount")?.metadata.annotations).toEqual({ "example.com/role": "operator" });
    const operator = operatorOf(manifests);
    expect(operator.env).toEqual([{ name: "BATCHROLLOUT_WATCH_NAMESPACE", value: "" }]);
    expect(operator.args).toEqual(expect.arrayContaining(["--workers=8", "--log-level=debug", "--leader-election-id=batchrollout-all", "--scheduler-metrics-insecure=true"]));
    expect((pod.spec.containers[0] as unknown as { image: string }).image).toMatch(/@sha256:0{64}$/);

    const named = await renderChart({ set: ["nameOverride=br-op"] });
    expect(deploymentOf(named).metadata.name).toBe("br-br-op");
    const external = await renderChart({ set: ["serviceAccount.create=false", "serviceAccount.name=existing"] });
    expect(find(external, "ServiceAccount")).toBeUndefined();
    expect(deploymentOf(external).spec.template.spec.serviceAccountName).toBe("existing");
  });

  it("renders every optional part together", async () => {
    const manifests = await renderChart({ values: [ALL_OPTIONS] });
    expect(OPTIONAL_KINDS.filter((k) => !find(manifests, k))).toEqual([]);
    const dashboard = find(manifests, "ConfigMap") as Manifest & { data: Record<string, string> };
    expect(dashboard.metadata.labels).toMatchObject({ grafana_dashboard: "1" });
    expect(dashboard.data["batchrollout.json"]).toBe(readFileSync(join(CHART_DIR, "files/grafana-dashboard.json"), "utf8").trimEnd());
    const rule = find(manifests, "PrometheusRule") as Manifest & { spec: { groups: { rules: { alert: string }[] }[] } };
    expect(rule.spec.groups.flatMap((g) => g.rules.map((r) => r.alert))).toEqual(["BatchRolloutStalled", "BatchRolloutThrottledStorm", "BatchRolloutNoLeader"]);
    expect(find(manifests, "PodDisruptionBudget")).toMatchObject({ spec: { minAvailable: 2 } });
  });

  it("gives the operator no Secrets and no wildcards, and aggregates view/edit roles for users", async () => {
    const manifests = await renderChart({ values: [ALL_OPTIONS] });
    type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[] };
    const roles = manifests.filter((m) => m.kind === "ClusterRole" || m.kind === "Role") as (Manifest & { rules: Rule[] })[];
    const operatorRules = roles.filter((r) => !r.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-edit"]).flatMap((r) => r.rules);
    expect(operatorRules.flatMap((r) => [...(r.resources ?? []), ...r.verbs, ...(r.apiGroups ?? [])]).filter((x) => x === "*" || x === "secrets")).toEqual([]);
    const aggregated = roles.filter((r) => r.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-edit"] === "true");
    expect(aggregated.map((r) => r.metadata.name).sort()).toEqual(["batchrollout-all-edit", "batchrollout-all-view"]);
    expect(aggregated.find((r) => r.metadata.name.endsWith("-view"))?.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"]).toBe("true");
  });

  it("has a helm test hook that reads the operator's Lease", async () => {
    const manifests = await renderChart();
    const hook = manifests.find((m) => m.metadata.annotations?.["helm.sh/hook"] === "test") as Manifest & { spec: { containers: { args: string[] }[] } };
    expect(hook?.kind).toBe("Pod");
    expect(hook.spec.containers[0]?.args[0]).toContain("/leases/br-batchrollout");
  });
});
