// REST paths of the resource types the operator touches.

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export const PODS: ResourceType = { group: "", version: "v1", plural: "pods", namespaced: true };
export const RESOURCE_QUOTAS: ResourceType = { group: "", version: "v1", plural: "resourcequotas", namespaced: true };
export const NODES: ResourceType = { group: "", version: "v1", plural: "nodes", namespaced: false };
export const EVENTS: ResourceType = { group: "events.k8s.io", version: "v1", plural: "events", namespaced: true };
export const LEASES: ResourceType = { group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true };
export const FLOW_SCHEMAS: ResourceType = { group: "flowcontrol.apiserver.k8s.io", version: "v1", plural: "flowschemas", namespaced: false };
export const PRIORITY_LEVELS: ResourceType = {
  group: "flowcontrol.apiserver.k8s.io",
  version: "v1",
  plural: "prioritylevelconfigurations",
  namespaced: false,
};

/**
 * `/api/v1/namespaces/ns/pods/name/status` and the like. Without a namespace, a namespaced type
 * gives its cluster-wide collection (for list and watch across namespaces).
 */
export function resourcePath(type: ResourceType, opts: { namespace?: string; name?: string; subresource?: string } = {}): string {
  const base = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const ns = type.namespaced && opts.namespace ? `/namespaces/${encodeURIComponent(opts.namespace)}` : "";
  const name = opts.name ? `/${encodeURIComponent(opts.name)}` : "";
  const sub = opts.name && opts.subresource ? `/${opts.subresource}` : "";
  return `${base}${ns}/${type.plural}${name}${sub}`;
}
