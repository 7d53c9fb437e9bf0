import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART_DIR, find, renderChart, type Manifest } from "./render.ts";

// What metrics.secure adds to the chart: the operator may review tokens, scrapers get a
// metrics-reader ClusterRole, the ServiceMonitor scrapes over https with a token, and a
// cert-manager Secret replaces the self-signed certificate. Ports: chart.test.ts.

const ALL_OPTIONS = join(CHART_DIR, "ci/all-options-values.yaml");

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}
type Role = Manifest & { rules: Rule[] };
interface Endpoint {
  scheme: string;
  bearerTokenFile?: string;
  authorization?: { type: string; credentials: { name: string; key: string } };
  tlsConfig?: { insecureSkipVerify?: boolean; serverName?: string; ca?: { secret: { name: string; key: string } } };
}
interface PodSpec {
  containers: { name: string; args: string[]; volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }[];
  volumes?: { name: string; secret?: { secretName: string } }[];
}

const operatorRole = (manifests: Manifest[]) => find(manifests, "ClusterRole", "br-batchrollout") as Role;
const reviews = (role: Role) =>
  role.rules.filter((r) => r.resources?.includes("tokenreviews") || r.resources?.includes("subjectaccessreviews")).map((r) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs }));
const endpointOf = (manifests: Manifest[]) => (find(manifests, "ServiceMonitor") as Manifest & { spec: { endpoints: Endpoint[] } }).spec.endpoints[0];
const podOf = (manifests: Manifest[]) => (find(manifests, "Deployment") as Manifest & { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const MONITORED = ["metrics.service.enabled=true", "metrics.serviceMonitor.enabled=true"];

describe("the chart's metrics RBAC", () => {
  it("secure (the default): the operator may create TokenReviews and SubjectAccessReviews, scrapers get a metrics-reader role", async () => {
    const manifests = await renderChart();
    expect(reviews(operatorRole(manifests))).toEqual([
      { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
      { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
    ]);
    expect((find(manifests, "ClusterRole", "br-batchrollout-metrics-reader") as Role).rules).toEqual([{ nonResourceURLs: ["/metrics"], verbs: ["get"] }]);
    // No binding unless readers are named.
    expect(find(manifests, "ClusterRoleBinding", "br-batchrollout-metrics-reader")).toBeUndefined();
  });

  it("binds the ServiceAccounts named in metrics.readers", async () => {
    const manifests = await renderChart({ set: ["metrics.readers[0].name=prometheus-k8s", "metrics.readers[0].namespace=monitoring"] });
    expect(find(manifests, "ClusterRoleBinding", "br-batchrollout-metrics-reader")).toMatchObject({
      roleRef: { kind: "ClusterRole", name: "br-batchrollout-metrics-reader" },
      subjects: [{ kind: "ServiceAccount", name: "prometheus-k8s", namespace: "monitoring" }],
    });
  });

  it("plain: neither the review rights nor the metrics-reader role", async () => {
    const manifests = await renderChart({ set: ["metrics.secure=false", "metrics.readers[0].name=p", "metrics.readers[0].namespace=m"] });
    expect(reviews(operatorRole(manifests))).toEqual([]);
    expect(manifests.filter((m) => m.metadata.name.endsWith("-metrics-reader"))).toEqual([]);
  });

  it("ships the review rights and the reader role to the identity-only install (operator.enabled=false)", async () => {
    const manifests = await renderChart({ set: ["operator.enabled=false"] });
    expect(reviews(operatorRole(manifests))).toHaveLength(2);
    expect(find(manifests, "ClusterRole", "br-batchrollout-metrics-reader")).toBeDefined();
  });
});

describe("the chart's ServiceMonitor and certificate", () => {
  it("with the self-signed certificate: https, Prometheus's own token, verification skipped", async () => {
    const manifests = await renderChart({ set: MONITORED });
    expect(endpointOf(manifests)).toMatchObject({ scheme: "https", bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token", tlsConfig: { insecureSkipVerify: true } });
    const pod = podOf(manifests);
    expect(pod.containers[0]?.args.filter((a) => a.startsWith("--metrics-cert-dir"))).toEqual([]);
    expect(pod.volumes).toBeUndefined();
  });

  it("with metrics.certSecret: mounted for --metrics-cert-dir, and the ServiceMonitor verifies it by its ca.crt", async () => {
    const manifests = await renderChart({ values: [ALL_OPTIONS] });
    const pod = podOf(manifests);
    const operator = pod.containers[0];
    expect(operator?.args).toContain("--metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs");
    expect(operator?.volumeMounts).toEqual([{ name: "metrics-cert", mountPath: "/tmp/k8s-metrics-server/metrics-certs", readOnly: true }]);
    expect(pod.volumes).toEqual([{ name: "metrics-cert", secret: { secretName: "batchrollout-all-metrics-tls" } }]);
    const endpoint = endpointOf(manifests);
    expect(endpoint).toMatchObject({
      scheme: "https",
      authorization: { type: "Bearer", credentials: { name: "prometheus-scrape-token", key: "token" } },
      tlsConfig: { serverName: "batchrollout-all-metrics.batchrollout-system.svc", ca: { secret: { name: "batchrollout-all-metrics-tls", key: "ca.crt" } } },
    });
    expect(endpoint?.bearerTokenFile).toBeUndefined();
    expect(endpoint?.tlsConfig?.insecureSkipVerify).toBeUndefined();
  });

  it("plain: http, no token, no TLS settings", async () => {
    const endpoint = endpointOf(await renderChart({ set: [...MONITORED, "metrics.secure=false"] }));
    expect(endpoint).toMatchObject({ scheme: "http" });
    expect(endpoint?.bearerTokenFile ?? endpoint?.authorization ?? endpoint?.tlsConfig).toBeUndefined();
  });
});
