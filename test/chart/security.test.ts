import { describe, expect, it } from "vitest";
import { dockerfileSpec, imageScriptSpec } from "../image/image-spec.ts";
import { find, renderChart } from "./render.ts";
import { verifyRunAsNonRoot, type SecurityContext } from "./run-as-non-root.ts";

// The kubelet refuses a container with runAsNonRoot whose user it cannot prove non-root. Pod
// Security admission lets such a pod through, so the only other place this shows is a real kubelet.

interface PodSpec {
  securityContext?: SecurityContext;
  containers: { name: string; securityContext?: SecurityContext }[];
}

async function operatorPod(set: string[] = []): Promise<PodSpec> {
  const deployment = find(await renderChart({ set }), "Deployment") as unknown as { spec: { template: { spec: PodSpec } } } | undefined;
  if (!deployment) throw new Error("the chart rendered no Deployment");
  return deployment.spec.template.spec;
}

describe("the chart's pod and the image's user, under the kubelet's runAsNonRoot check", () => {
  it("start with the default values, from either build path", async () => {
    const pod = await operatorPod();
    for (const user of [dockerfileSpec().user, imageScriptSpec().user]) {
      for (const c of pod.containers) expect(verifyRunAsNonRoot(pod.securityContext, c.securityContext, user)).toBeUndefined();
    }
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
  });

  it("still start when a user removes runAsUser, because the image's user is numeric", async () => {
    const pod = await operatorPod(["podSecurityContext.runAsUser=null", "podSecurityContext.runAsGroup=null"]);
    expect(pod.securityContext?.runAsUser).toBeUndefined();
    for (const c of pod.containers) expect(verifyRunAsNonRoot(pod.securityContext, c.securityContext, dockerfileSpec().user)).toBeUndefined();
  });

  it("refuse the pair the chart shipped before: runAsNonRoot without runAsUser, image user `node`", () => {
    expect(verifyRunAsNonRoot({ runAsNonRoot: true }, {}, "node")).toMatch(/non-numeric user \(node\)/);
    expect(verifyRunAsNonRoot({ runAsNonRoot: true }, {}, "")).toMatch(/will run as root/);
    expect(verifyRunAsNonRoot({ runAsNonRoot: true, runAsUser: 0 }, {}, "65532")).toMatch(/breaks non-root/);
    expect(verifyRunAsNonRoot({ runAsNonRoot: true }, { runAsNonRoot: false }, "node")).toBeUndefined();
  });
});
