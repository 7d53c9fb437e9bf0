import { spawn } from "node:child_process";
import { createWriteStream, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { VERSIONS } from "../../test/cluster/layout.ts";
import { podTemplate } from "../pod-template.ts";
import type { Method } from "./method.ts";

// kube-burner itself (built from Go modules with the control plane) at a fixed QPS = burst, with the
// writer's kubeconfig. Its client-go rate limiter is the fixed-rate baseline; its 429s are counted
// from kube-apiserver's APF rejections for the writer's flow schema, since client-go retries them
// silently.

/** The fixed rates that draw the frontier. */
export const KUBE_BURNER_QPS = [20, 50, 100, 200] as const;
/** kube-burner's own deadline for its create job and its wait for Running pods. */
const KUBE_BURNER_TIMEOUT = "2h";

function writeConfig(dir: string, opts: { job: string; namespace: string; n: number; qps: number }): string {
  const t = podTemplate(opts.job);
  // The namespace is fixed in the template, so kube-burner neither creates nor labels namespaces
  // (the writer identity may not) and all pods land in the method's fresh namespace.
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "kb-{{.Iteration}}", namespace: opts.namespace, labels: t.metadata.labels },
    spec: t.spec,
  };
  writeFileSync(join(dir, "pod.yml"), stringify(pod));
  const config = {
    global: { gc: false, measurements: [] },
    jobs: [
      {
        name: opts.job,
        jobType: "create",
        jobIterations: opts.n,
        qps: opts.qps,
        burst: opts.qps,
        namespacedIterations: false,
        namespace: opts.namespace,
        cleanup: false,
        preLoadImages: false,
        podWait: false,
        waitWhenFinished: true,
        maxWaitTimeout: KUBE_BURNER_TIMEOUT,
        verifyObjects: true,
        errorOnVerify: false,
        objects: [{ objectTemplate: "pod.yml", replicas: 1 }],
      },
    ],
  };
  const file = join(dir, "config.yml");
  writeFileSync(file, stringify(config));
  return file;
}

export function kubeBurner(qps: number): Method {
  const id = `kube-burner-qps${qps}`;
  return {
    id,
    label: `kube-burner qps=burst=${qps}`,
    writerIdentity: "writer",
    pods: (n) => n,
    async run(ctx) {
      const config = writeConfig(ctx.workDir, { job: id, namespace: ctx.namespace, n: ctx.n, qps });
      const log = createWriteStream(join(ctx.workDir, "kube-burner.log"));
      ctx.markStart();
      const child = spawn(
        join(ctx.binDir, "kube-burner"),
        ["init", "-c", config, `--kubeconfig=${ctx.writerKubeconfig}`, `--uuid=${ctx.runId}-${id}`, `--timeout=${KUBE_BURNER_TIMEOUT}`, "--log-level=info"],
        { cwd: ctx.workDir, stdio: ["ignore", "pipe", "pipe"] },
      );
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      if (child.pid) ctx.addProcess("kube-burner", child.pid);
      const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
      return {
        writesDone: exited.then((exitCode) => ({ exitCode })),
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          await exited;
        },
        notes: [`kube-burner ${VERSIONS.KUBE_BURNER_VERSION ?? "?"} create job, jobIterations=${ctx.n}, qps=burst=${qps}, writer kubeconfig`],
      };
    },
  };
}
