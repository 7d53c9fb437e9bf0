// IP headroom: how many more pods the pod network can give an address to. Each provider turns the
// objects of one IPAM into a count; the lead's informers and discovery feed them.

import type { IpamProvider } from "../../api/batchrollout.ts";

export type ConcreteIpamProvider = Exclude<IpamProvider, "Auto">;

/** What every provider reports; the sizer caps the wave at free minus the reserve. */
export interface IpHeadroom {
  provider: ConcreteIpamProvider;
  /** Addresses a new pod could take now; undefined when the provider cannot tell (no cap is applied). */
  free: number | undefined;
  /** Usable addresses in the pool, used or not; a percentage reserve is taken of this. */
  capacity?: number;
  /** Why the count is what it is, or why it is unknown, for status.signals.ipam.message. */
  message?: string;
  /** Pods standing beyond their node's addresses (NodePodCIDR): the node allows more pods than its podCIDR holds. */
  overflow?: IpOverflow;
}

export interface IpOverflow {
  /** Pods beyond their node's addresses; each will wait for an address that never comes. */
  pods: number;
  /** Nodes with such pods that still have a free pod slot: the scheduler may put new pods there too. */
  openNodes: number;
  /** Which nodes, in words. */
  message: string;
}

/** API groups that betray an IPAM, in the order Auto prefers them. */
export const IPAM_API_GROUPS: ReadonlyArray<readonly [group: string, provider: ConcreteIpamProvider]> = [
  ["crd.projectcalico.org", "Calico"],
  ["cilium.io", "Cilium"],
  ["whereabouts.cni.cncf.io", "Whereabouts"],
];

export interface ProviderChoice {
  provider: ConcreteIpamProvider;
  reason: string;
}

/**
 * The provider to read. An explicit choice is kept; Auto picks by API discovery, Calico before Cilium
 * before Whereabouts (Whereabouts usually serves secondary networks, so a primary CNI's CRDs win), and
 * falls back to node podCIDRs, which kube-controller-manager fills whenever --allocate-node-cidrs is on.
 * AWS VPC CNI is never auto-picked: its count comes from ipamd metrics, which need a metricsURL.
 */
export function selectProvider(apiGroupsPresent: Iterable<string>, requested: IpamProvider): ProviderChoice {
  if (requested !== "Auto") return { provider: requested, reason: `spec.guards.ipam.provider is ${requested}` };
  const groups = new Set(apiGroupsPresent);
  for (const [group, provider] of IPAM_API_GROUPS) {
    if (groups.has(group)) return { provider, reason: `Auto: API group ${group} is served` };
  }
  return { provider: "NodePodCIDR", reason: "Auto: no Calico, Cilium or Whereabouts API group is served, using node podCIDRs" };
}

/**
 * What the lead implements per provider: informers or a metrics scrape feed the pure arithmetic in
 * this folder (nodePodCidrHeadroom, calicoHeadroom, ciliumHeadroom, whereaboutsHeadroom,
 * awsVpcCniHeadroom) and hand the sizer an IpHeadroom.
 */
export interface IpHeadroomProvider {
  readonly provider: ConcreteIpamProvider;
  headroom(now: number): IpHeadroom | Promise<IpHeadroom>;
}
