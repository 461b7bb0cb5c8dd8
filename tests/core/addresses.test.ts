/**
 * Address judgements that need no socket: which clients count as the local network (what
 * first-run pairing accepts) and which URLs a browser uses to reach a bound server.
 * (Trusted-proxy resolution is tested with the guard, where it matters.)
 */
import { describe, expect, test } from "bun:test";
import { isLocalNetwork, listReachableUrls } from "../../auth/core/addresses.ts";

describe("isLocalNetwork", () => {
  test.each([
    ["127.0.0.1", true],
    ["::ffff:127.0.0.1", true],
    ["::1", true],
    ["10.1.2.3", true],
    ["172.16.0.1", true],
    ["172.31.255.255", true],
    ["172.32.0.1", false],
    ["192.168.1.20", true],
    ["::ffff:192.168.1.20", true],
    ["169.254.10.1", true],
    ["100.101.102.103", true],
    ["100.128.0.1", false],
    ["fd12:3456:789a::1", true],
    ["fc00::1", true],
    ["fe80::1", true],
    ["febf::1", true],
    ["fec0::1", false],
    ["fc::1", false],
    ["2001:db8::1", false],
    ["203.0.113.9", false],
    ["8.8.8.8", false],
    ["-", false],
    ["", false],
    ["not an address", false],
  ])("%p → %p", (address, expected) => {
    expect(isLocalNetwork(address)).toBe(expected);
  });
});

describe("listReachableUrls", () => {
  const interfaces = [
    { address: "127.0.0.1", family: "IPv4", internal: true },
    { address: "192.168.1.20", family: "IPv4", internal: false },
    { address: "fe80::1", family: "IPv6", internal: false },
    { address: "10.0.0.5", family: "IPv4", internal: false },
  ];
  test.each([
    ["0.0.0.0", ["http://192.168.1.20:8000/", "http://10.0.0.5:8000/"]],
    ["::", ["http://192.168.1.20:8000/", "http://10.0.0.5:8000/"]],
    ["192.168.1.20", ["http://192.168.1.20:8000/"]],
    ["::1", ["http://[::1]:8000/"]],
  ])("bound to %p", (host, expected) => {
    expect(listReachableUrls("http", host, 8000, interfaces)).toEqual(expected);
  });
});
