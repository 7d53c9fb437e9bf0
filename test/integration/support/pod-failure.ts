import type { KubeClient } from "../../../src/kube/client.ts";
import { podPath } from "./batchrollout.ts";

/** What a kubelet reports when a pod's only container exits 1 (kwok's stages of the test bed never fail a pod). */
const FAILED_STATUS = {
  status: {
    phase: "Failed",
    conditions: [
      { type: "Ready", status: "False", reason: "PodFailed" },
      { type: "ContainersReady", status: "False", reason: "PodFailed" },
    ],
  },
};

/** Fails a pod as its kubelet would, through the status subresource. */
export async function failPod(admin: KubeClient, ns: string, name: string): Promise<void> {
  await admin.patch(`${podPath(ns, name)}/status`, FAILED_STATUS, "application/strategic-merge-patch+json");
}
