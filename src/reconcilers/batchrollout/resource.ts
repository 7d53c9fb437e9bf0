import { GROUP, PLURAL, VERSION } from "../../api/batchrollout.ts";
import type { ResourceType } from "../../kube/resources.ts";

/** The BatchRollout resource, for request paths and informers. */
export const BATCHROLLOUTS: ResourceType = { group: GROUP, version: VERSION, plural: PLURAL, namespaced: true };
