import { describe, expect, it } from "vitest";
import { selectProvider } from "./index.ts";

const CORE = ["", "apps", "batch", "coordination.k8s.io", "flowcontrol.apiserver.k8s.io"];

describe("selectProvider", () => {
  it("keeps an explicit choice whatever is installed", () => {
    expect(selectProvider([...CORE, "cilium.io"], "Calico").provider).toBe("Calico");
    expect(selectProvider(CORE, "AwsVpcCni").provider).toBe("AwsVpcCni");
    expect(selectProvider(CORE, "None").provider).toBe("None");
  });

  it("picks by discovery for Auto", () => {
    expect(selectProvider([...CORE, "crd.projectcalico.org"], "Auto")).toEqual({ provider: "Calico", reason: "Auto: API group crd.projectcalico.org is served" });
    expect(selectProvider([...CORE, "cilium.io"], "Auto").provider).toBe("Cilium");
    expect(selectProvider([...CORE, "whereabouts.cni.cncf.io"], "Auto").provider).toBe("Whereabouts");
    expect(selectProvider(CORE, "Auto").provider).toBe("NodePodCIDR");
  });

  it("prefers a primary CNI over Whereabouts, Calico over Cilium", () => {
    expect(selectProvider(["whereabouts.cni.cncf.io", "cilium.io"], "Auto").provider).toBe("Cilium");
    expect(selectProvider(new Set(["cilium.io", "crd.projectcalico.org"]), "Auto").provider).toBe("Calico");
  });
});
