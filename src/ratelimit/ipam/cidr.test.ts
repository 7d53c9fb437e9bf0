import { describe, expect, it } from "vitest";
import { IPV6_COUNT_CAP, contains, containsCidr, minOverFamilies, parseCidr, parseIp, toCount } from "./cidr.ts";

describe("parseIp", () => {
  it("reads IPv4 and IPv6, compressed and with an embedded IPv4", () => {
    expect(parseIp("10.244.3.7")).toEqual({ family: 4, value: 0x0af40307n });
    expect(parseIp("fd00::1")).toEqual({ family: 6, value: (0xfd00n << 112n) | 1n });
    expect(parseIp("::")).toEqual({ family: 6, value: 0n });
    expect(parseIp("::ffff:10.0.0.1")).toEqual({ family: 6, value: (0xffffn << 32n) | 0x0a000001n });
    expect(parseIp("1:2:3:4:5:6:7:8")?.value).toBe(0x00010002000300040005000600070008n);
  });

  it("rejects what is not an address", () => {
    for (const bad of ["10.0.0", "10.0.0.256", "01.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8:9", "fd00::g", "", "host"]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });
});

describe("parseCidr", () => {
  it("clears host bits and counts addresses", () => {
    const cidr = parseCidr("10.244.3.9/24");
    expect(cidr).toMatchObject({ family: 4, prefix: 24, network: 0x0af40300n, size: 256n });
    expect(parseCidr("fd00:10:244::/64")?.size).toBe(1n << 64n);
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
    expect(parseCidr("10.0.0.0")).toBeUndefined();
  });

  it("answers containment", () => {
    const pool = parseCidr("10.244.0.0/16")!;
    expect(containsCidr(pool, parseCidr("10.244.120.64/26")!)).toBe(true);
    expect(containsCidr(pool, parseCidr("10.245.0.0/26")!)).toBe(false);
    expect(containsCidr(pool, parseCidr("10.0.0.0/8")!)).toBe(false);
    expect(contains(pool, parseIp("10.244.255.255")!)).toBe(true);
    expect(contains(pool, parseIp("fd00::1")!)).toBe(false);
  });
});

describe("counts", () => {
  it("caps IPv6 and floors at zero", () => {
    expect(toCount(1n << 64n, 6)).toBe(IPV6_COUNT_CAP);
    expect(toCount(253n, 4)).toBe(253);
    expect(toCount(-3n, 4)).toBe(0);
  });

  it("lets the scarcer family decide for dual-stack", () => {
    expect(minOverFamilies(new Map([[4, 200], [6, IPV6_COUNT_CAP]]))).toBe(200);
    expect(minOverFamilies(new Map())).toBeUndefined();
  });
});
