// Address arithmetic shared by the IPAM headroom providers. Addresses are bigints so IPv6 needs no
// special path; counts handed to the sizer are plain numbers, with IPv6 capped (see IPV6_COUNT_CAP).

import { MAX_REPLICAS } from "../../api/batchrollout.ts";

/**
 * Most addresses we ever report for one IPv6 range. A /64 holds 2^64 addresses: addresses are never
 * what limits an IPv6 rollout, and a number this size keeps sums exact in a double and readable in status.
 */
export const IPV6_COUNT_CAP = MAX_REPLICAS;

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

export interface Cidr {
  family: IpFamily;
  prefix: number;
  /** The network address (host bits cleared). */
  network: bigint;
  /** Addresses in the range, network and broadcast included. */
  size: bigint;
  text: string;
}

const V4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined;
    value = (value << 8n) | BigInt(Number(part));
  }
  return value;
}

function parseV6(text: string): bigint | undefined {
  let groups: string[];
  // An embedded dotted quad (::ffff:10.0.0.1) stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  let tail: bigint[] = [];
  let head = text;
  if (text.includes(".")) {
    const v4 = parseV4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [v4 >> 16n, v4 & 0xffffn];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const left = halves[0] ? halves[0].split(":") : [];
  const right = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const explicit = left.length + right.length + tail.length;
  if (halves.length === 1) {
    if (explicit !== 8) return undefined;
    groups = left;
  } else {
    if (explicit > 7) return undefined;
    groups = [...left, ...Array<string>(8 - explicit).fill("0"), ...right];
  }
  let value = 0n;
  for (const group of groups.slice(0, 8 - tail.length)) {
    if (!V6_GROUP.test(group)) return undefined;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  for (const group of tail) value = (value << 16n) | group;
  return value;
}

/** Parses a dotted-quad IPv4 or an RFC 4291 IPv6 address; undefined when it is neither. */
export function parseIp(text: string): IpAddress | undefined {
  const trimmed = text.trim();
  if (trimmed.includes(":")) {
    const value = parseV6(trimmed);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseV4(trimmed);
  return value === undefined ? undefined : { family: 4, value };
}

export function familyBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** Parses "10.244.3.0/24" or "fd00::/64". Host bits are cleared, as every IPAM we read does. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1).trim();
  if (!address || !/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const bits = familyBits(address.family);
  const prefix = Number(prefixText);
  if (prefix > bits) return undefined;
  const hostBits = BigInt(bits - prefix);
  const network = (address.value >> hostBits) << hostBits;
  return { family: address.family, prefix, network, size: 1n << hostBits, text: text.trim() };
}

export function contains(cidr: Cidr, address: IpAddress): boolean {
  return address.family === cidr.family && address.value >= cidr.network && address.value < cidr.network + cidr.size;
}

/** Whether `inner` lies wholly inside `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.family === outer.family && inner.network >= outer.network && inner.network + inner.size <= outer.network + outer.size;
}

/** A bigint count as a number, IPv6 counts capped at IPV6_COUNT_CAP and negatives at 0. */
export function toCount(count: bigint, family: IpFamily): number {
  if (count <= 0n) return 0;
  if (family === 6 && count > BigInt(IPV6_COUNT_CAP)) return IPV6_COUNT_CAP;
  return Number(count);
}

/**
 * Combines free counts of the families a pod needs. A dual-stack pod takes one address of each
 * family, so the scarcer family decides; with one family present it is that family's count.
 */
export function minOverFamilies(byFamily: ReadonlyMap<IpFamily, number>): number | undefined {
  let result: number | undefined;
  for (const free of byFamily.values()) result = result === undefined ? free : Math.min(result, free);
  return result;
}
