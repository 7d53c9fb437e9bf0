import { join } from "node:path";
import { stringify } from "yaml";
import { KubeClient } from "../src/kube/client.ts";
import { kubectl } from "../test/cluster/cluster.ts";
import { writeKubeconfig } from "../test/cluster/kubeconfig.ts";
import { apiServerUrl, paths } from "../test/cluster/layout.ts";
import { BYSTANDER_NAME, BYSTANDER_TARGET_POD } from "./bystander.ts";
import { podTemplate } from "./pod-template.ts";

// Who is who on the benchmark's cluster, and where APF puts them. The writer is the operator's
// ServiceAccount (FlowSchema service-accounts → workload-low). The bystander gets its own
// ServiceAccount and a FlowSchema of its own that sends it to the same priority level, so it competes
// with the writer for workload-low's seats but is a different flow with its own queues.

/** Below service-accounts' 9000 so ours matches first; above the system schemas. */
export const BYSTANDER_FLOW_SCHEMA_PRECEDENCE = 1_000;
/** The priority level the writer lands in, which the bystander is sent to on purpose. */
export const SHARED_PRIORITY_LEVEL = "workload-low";
/** Tokens minted for the benchmark outlive any run. */
const TOKEN_SECONDS = 24 * 3_600;
/** kube-controller-manager's replicaset controller writes as this ServiceAccount (--use-service-account-credentials). */
export const REPLICASET_CONTROLLER = { namespace: "kube-system", name: "replicaset-controller" } as const;

export interface Classification {
  user: string;
  flowSchema: string;
  priorityLevel: string;
}

interface Named {
  items: { metadata: { name: string; uid: string } }[];
}

/** Maps the UIDs in X-Kubernetes-PF-* headers to FlowSchema and PriorityLevelConfiguration names. */
export async function pfNames(admin: KubeClient): Promise<Map<string, string>> {
  const [fs, pl] = await Promise.all([
    admin.get<Named>("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas"),
    admin.get<Named>("/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations"),
  ]);
  return new Map([...fs.items, ...pl.items].map((o) => [o.metadata.uid, o.metadata.name]));
}

/** One GET as `client`, read back from the APF headers of the answer. */
export async function classify(client: KubeClient, names: Map<string, string>, path: string): Promise<Classification> {
  const res = await client.request({ method: "GET", path, query: { limit: 1 }, discardBody: true, retryThrottled: true });
  const header = (h: string) => {
    const v = res.headers[h];
    return typeof v === "string" ? (names.get(v) ?? v) : "?";
  };
  return { user: client.userName, flowSchema: header("x-kubernetes-pf-flowschema-uid"), priorityLevel: header("x-kubernetes-pf-prioritylevel-uid") };
}

async function tokenFor(admin: KubeClient, namespace: string, name: string): Promise<string> {
  const res = await admin.create<{ status: { token: string } }>(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds: TOKEN_SECONDS },
  });
  return res.status.token;
}

function tokenKubeconfig(file: string, user: string, token: string): string {
  writeKubeconfig(file, { server: apiServerUrl, caFile: join(paths.pki, "ca.crt"), user, credentials: { token } });
  return file;
}

/**
 * Creates (idempotently) the bystander's namespace, ServiceAccount, RBAC, FlowSchema and the pod it
 * reads; returns its kubeconfig.
 */
export async function ensureBystander(admin: KubeClient, binDir: string): Promise<string> {
  const ns = BYSTANDER_NAME;
  const docs = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: BYSTANDER_NAME, namespace: ns } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: BYSTANDER_NAME, namespace: ns },
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get"] },
        { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "create", "delete"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: BYSTANDER_NAME, namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: BYSTANDER_NAME },
      subjects: [{ kind: "ServiceAccount", name: BYSTANDER_NAME, namespace: ns }],
    },
    {
      apiVersion: "flowcontrol.apiserver.k8s.io/v1",
      kind: "FlowSchema",
      metadata: { name: BYSTANDER_NAME },
      spec: {
        priorityLevelConfiguration: { name: SHARED_PRIORITY_LEVEL },
        matchingPrecedence: BYSTANDER_FLOW_SCHEMA_PRECEDENCE,
        distinguisherMethod: { type: "ByUser" },
        rules: [
          {
            subjects: [{ kind: "ServiceAccount", serviceAccount: { name: BYSTANDER_NAME, namespace: ns } }],
            resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true }],
            nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
          },
        ],
      },
    },
  ];
  kubectl(binDir, ["apply", "-f", "-"], docs.map((d) => stringify(d)).join("---\n"));
  // Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
  for (let i = 0; ; i++) {
    try {
      await admin.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`);
      break;
    } catch (err) {
      if (i > 120) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const t = podTemplate("bystander");
  const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: BYSTANDER_TARGET_POD, namespace: ns, labels: t.metadata.labels }, spec: t.spec };
  kubectl(binDir, ["apply", "-f", "-"], stringify(pod));
  return tokenKubeconfig(join(paths.state, `${BYSTANDER_NAME}.kubeconfig`), `system:serviceaccount:${ns}:${BYSTANDER_NAME}`, await tokenFor(admin, ns, BYSTANDER_NAME));
}

/**
 * Where kube-controller-manager's replicaset controller lands in APF: one GET with a token of its own
 * ServiceAccount, read from the X-Kubernetes-PF-* headers. This is the identity that writes a
 * Deployment's pods.
 */
export async function classifyReplicaSetController(admin: KubeClient, names: Map<string, string>): Promise<Classification> {
  const { namespace, name } = REPLICASET_CONTROLLER;
  const file = tokenKubeconfig(join(paths.state, "bench-replicaset-controller.kubeconfig"), `system:serviceaccount:${namespace}:${name}`, await tokenFor(admin, namespace, name));
  const client = await KubeClient.fromKubeconfig(file);
  try {
    return await classify(client, names, "/api/v1/pods");
  } finally {
    await client.close();
  }
}
