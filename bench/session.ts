import { existsSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { KubeClient } from "../src/kube/client.ts";
import { kubectl, up, type ClusterInfo } from "../test/cluster/cluster.ts";
import { REPO_ROOT, paths } from "../test/cluster/layout.ts";
import { BYSTANDER_NAME } from "./bystander.ts";
import { spawnScript, type ChildHandle } from "./child.ts";
import { SHARED_PRIORITY_LEVEL, classify, classifyReplicaSetController, ensureBystander, pfNames, type Classification } from "./identities.ts";
import { rolloutsPath } from "./methods/batchrollout.ts";
import type { Method, WriterIdentities } from "./methods/method.ts";
import { deleteNamespace, leftoverNamespaces, removeControllers } from "./namespaces.ts";
import { Sampler } from "./sampler.ts";
import { KwokLog } from "./scrape/kwok-log.ts";
import type { BystanderRecord } from "./samples.ts";
import type { BystanderLine } from "./writer-protocol.ts";

// What every benchmark run sets up on its cluster before the first method: the control plane (brought
// up or reused), the CRD, an empty slate of namespaces, the identities read back from APF, the
// bystander's process and the sampler. One session per cluster: the control-plane CPU axis opens a new
// one on each level's fresh cluster.

const CRD_ESTABLISHED_TIMEOUT = "60s";

export interface SessionIdentities {
  writer: Classification;
  bystander: Classification;
  replicaSetController?: Classification;
  note: string;
}

export interface Session {
  info: ClusterInfo;
  admin: KubeClient;
  logger: Logger;
  identities: WriterIdentities;
  identitiesOut: SessionIdentities;
  /** The bystander's records so far (appended to by its process). */
  records: BystanderRecord[];
  sampler: Sampler;
  kwokLog: KwokLog;
  /** Stops the bystander and the sampler, closes the admin client. */
  close(): Promise<void>;
}

export async function openSession(opts: { nodes: number; methods: readonly Method[]; workRoot: string; bystanderMaxS: number; say: (line: string) => void }): Promise<Session> {
  const { say } = opts;
  const info = await up({ nodes: opts.nodes });
  if (opts.methods.some((m) => m.id.startsWith("kube-burner-")) && !existsSync(join(info.binDir, "kube-burner"))) {
    throw new Error(`kube-burner is not in ${info.binDir}: build it with test/cluster/build-binaries.sh`);
  }
  const admin = await KubeClient.fromKubeconfig(info.adminKubeconfig);
  const logger = pino({ level: "warn" }, pino.destination(2));
  kubectl(info.binDir, ["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(info.binDir, ["wait", "--for=condition=Established", "crd/batchrollouts.batchrollout.dev", `--timeout=${CRD_ESTABLISHED_TIMEOUT}`]);

  for (const ns of await leftoverNamespaces(admin)) {
    say(`removing namespace ${ns} left by an earlier run`);
    await removeControllers(admin, ns, rolloutsPath(ns));
    await deleteNamespace(admin, ns);
  }

  const bystanderKubeconfig = await ensureBystander(admin, info.binDir);
  const names = await pfNames(admin);
  const writerClient = await KubeClient.fromKubeconfig(info.operatorKubeconfig);
  const writer = await classify(writerClient, names, "/api/v1/pods");
  await writerClient.close();
  const bystanderClient = await KubeClient.fromKubeconfig(bystanderKubeconfig);
  const bystander = await classify(bystanderClient, names, `/api/v1/namespaces/${BYSTANDER_NAME}/configmaps`);
  await bystanderClient.close();
  const replicaSetController = opts.methods.some((m) => m.writerIdentity === "replicaset-controller") ? await classifyReplicaSetController(admin, names) : undefined;
  const sameLevel = bystander.priorityLevel === writer.priorityLevel && bystander.flowSchema !== writer.flowSchema;
  const note = sameLevel
    ? `The bystander shares the writer's priority level (${writer.priorityLevel}) but not its flow schema (${writer.flowSchema}): it competes for the same seats as a separate flow.`
    : `WARNING: the bystander was expected in ${SHARED_PRIORITY_LEVEL} beside the writer, in another flow schema; it is in ${bystander.flowSchema}/${bystander.priorityLevel}.`;
  say(`writer:    ${writer.user} → FlowSchema ${writer.flowSchema}, priority level ${writer.priorityLevel}`);
  say(`bystander: ${bystander.user} → FlowSchema ${bystander.flowSchema}, priority level ${bystander.priorityLevel}`);
  say(`           ${note}`);
  if (replicaSetController) {
    say(`Deployment pods: ${replicaSetController.user} → FlowSchema ${replicaSetController.flowSchema}, priority level ${replicaSetController.priorityLevel}`);
  }
  const identities: WriterIdentities = {
    writer: { flowSchema: writer.flowSchema, priorityLevel: writer.priorityLevel },
    "replicaset-controller": replicaSetController
      ? { flowSchema: replicaSetController.flowSchema, priorityLevel: replicaSetController.priorityLevel }
      : { flowSchema: "", priorityLevel: "" },
  };

  const records: BystanderRecord[] = [];
  const bystanderProcess: ChildHandle = spawnScript<BystanderLine>(
    "bystander-main.ts",
    [`--kubeconfig=${bystanderKubeconfig}`, `--namespace=${BYSTANDER_NAME}`, `--max-s=${opts.bystanderMaxS}`],
    join(opts.workRoot, "bystander.log"),
    (line) => {
      if (line.type === "request") records.push({ at: line.at, ms: line.ms, op: line.op, code: line.code, ...(line.error ? { error: line.error } : {}) });
    },
  );
  const sampler = new Sampler(admin);
  // What the cluster's earlier runs left in the log is not this run's.
  const kwokLog = new KwokLog(join(paths.logs, "kwok.log"), { fromEnd: true });
  return {
    info,
    admin,
    logger,
    identities,
    identitiesOut: { writer, bystander, ...(replicaSetController ? { replicaSetController } : {}), note },
    records,
    sampler,
    kwokLog,
    close: async () => {
      await bystanderProcess.stop();
      await sampler.close();
      await admin.close();
    },
  };
}
