import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { GROUP, PLURAL, VERSION } from "../../../src/api/batchrollout.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import { REPO_ROOT } from "../../cluster/layout.ts";
import { eventually } from "./cluster.ts";

// Installs the BatchRollout CRD from crds/ (the generated file, so tests run against exactly what a
// user would install) and waits until the API server serves the type.

export const CRD_FILE = join(REPO_ROOT, "crds/batchrollout.dev_batchrollouts.yaml");
export const CRD_NAME = `${PLURAL}.${GROUP}`;
/** Field manager of the test suite's server-side apply, distinct from kubectl's and Helm's. */
export const CRD_FIELD_MANAGER = "batchrollout-integration-tests";
/** A new CRD is Established within a second or two; a loaded 2-core machine may take longer. */
export const CRD_ESTABLISHED_TIMEOUT_MS = 60_000;

interface Crd {
  status?: { conditions?: { type: string; status: string }[] };
}

/**
 * Server-side applies the CRD (creating it when absent, bringing it in line with crds/ when it
 * drifted) and waits for Established and for the collection to answer a list.
 */
export async function ensureCrd(admin: KubeClient): Promise<void> {
  const manifest: unknown = parse(readFileSync(CRD_FILE, "utf8"));
  // JSON is YAML, so the apply-patch content type takes the parsed manifest as it is.
  await admin.request({
    method: "PATCH",
    path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
    query: { fieldManager: CRD_FIELD_MANAGER, force: true },
    body: manifest,
    contentType: "application/apply-patch+yaml",
  });
  await eventually(
    `CRD ${CRD_NAME} Established`,
    async () => {
      const crd = await admin.get<Crd>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True") ?? false;
    },
    CRD_ESTABLISHED_TIMEOUT_MS,
  );
  // Established can precede the handler being installed on this API server by a moment.
  await eventually(`${PLURAL} served`, () => admin.get(`/apis/${GROUP}/${VERSION}/${PLURAL}`, { limit: 1 }).then(() => true), CRD_ESTABLISHED_TIMEOUT_MS);
}
