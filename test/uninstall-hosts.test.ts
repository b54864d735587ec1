/**
 * The uninstall script on a real host with real iptables: it removes Kilo's chains, the jumps to
 * them and the rules kg marks "Kilo: …", and leaves every other rule alone — an operator rule whose
 * comment mentions KILO- included (the previous `iptables-save | grep -v KILO- | iptables-restore`
 * dropped it and rewrote whole tables).
 *
 * Kilo's rules are loaded in the shapes kg writes them (squat/kilo pkg/mesh/routes.go: KILO-NAT in
 * nat, jumped to from POSTROUTING, FORWARD accepts for the pod subnet; pkg/encapsulation/ipip.go:
 * KILO-IPIP in filter, jumped to from INPUT, and a DROP for other IPIP traffic), for IPv4 and IPv6.
 */
import { spawnSync } from "child_process";
import { nodeRuleSet } from "../lib/render/firewall-rules";
import { STAGED_CONFIG } from "../lib/render/install-script";
import { renderStagingScript, STAGING_DIR, STATE_DIR } from "../lib/render/shell";
import { renderBatchedFirewallScript } from "../lib/render/ufw-script";
import { renderUninstallScript } from "../lib/render/uninstall-script";
import { createLab, Lab, LabHost } from "./harness/lab";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

jest.setTimeout(180000);

const canRun = process.getuid?.() === 0 && ["iptables", "ip6tables", "sshd", "unshare", "ip"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
const describeReal = canRun ? describe : describe.skip;
const hasUfw = canRun && spawnSync("sh", ["-c", "command -v ufw"]).status === 0;

/** The operator's own rules, some of which mention KILO- or Kilo in their comments. */
const OPERATOR_V4 = `*filter
:OPS-INPUT - [0:0]
-A INPUT -p tcp -m tcp --dport 8443 -m comment --comment "KILO- office VPN, keep" -j ACCEPT
-A INPUT -j OPS-INPUT
-A OPS-INPUT -s 192.0.2.0/24 -m comment --comment "jump target says -j KILO-NAT but is text" -j ACCEPT
-A FORWARD -s 10.99.0.0/16 -m comment --comment "operator forward, not Kilo" -j ACCEPT
COMMIT
*nat
-A POSTROUTING -s 10.99.0.0/16 -m comment --comment "operator masquerade (KILO-NAT lookalike)" -j MASQUERADE
COMMIT
`;
const OPERATOR_V6 = `*filter
-A INPUT -p tcp -m tcp --dport 8443 -m comment --comment "KILO- office VPN v6" -j ACCEPT
COMMIT
`;

/** Kilo's rules, as kg writes them. */
const KILO_V4 = `*filter
:KILO-IPIP - [0:0]
-A INPUT -p ipip -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP
-A INPUT -p ipip -m comment --comment "Kilo: reject other IPIP traffic" -j DROP
-A KILO-IPIP -s 198.51.100.31/32 -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT
-I FORWARD 1 -s 10.42.1.0/24 -m comment --comment "Kilo: forward packets from the pod subnet" -j ACCEPT
-I FORWARD 1 -d 10.42.1.0/24 -m comment --comment "Kilo: forward packets to the pod subnet" -j ACCEPT
COMMIT
*nat
:KILO-NAT - [0:0]
-I POSTROUTING 1 -s 10.42.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT
-A KILO-NAT -d 10.4.0.1/32 -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN
-A KILO-NAT -d 10.43.0.0/16 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN
-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE
COMMIT
`;
const KILO_V6 = `*filter
:KILO-IPIP - [0:0]
-A INPUT -p ipv6 -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP
COMMIT
*nat
:KILO-NAT - [0:0]
-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE
COMMIT
`;

let lab: Lab;
let node: LabHost;

/**
 * Every table's rules and chains, without counters or comment lines. A table with no rules, no
 * chains of its own and only ACCEPT policies is left out: with the nf_tables backend such an empty
 * table appears once anything has touched it, and it filters nothing.
 */
async function rules(tool: "iptables" | "ip6tables"): Promise<string> {
  const saved = await node.run(`${tool}-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'`);
  return saved.split(/^(?=\*)/m).filter((block) => {
    const lines = block.split("\n").filter((l) => l.trim());
    return lines.some((l) => l.startsWith("-A ") || (l.startsWith(":") && !/^:[A-Z]+ ACCEPT\s*$/.test(l)));
  }).join("");
}

describeReal("uninstall on a host with real iptables", () => {
  beforeAll(async () => {
    lab = await createLab({ hosts: [{ name: "node", address: "198.51.100.30" }] });
    node = lab.host("node");
  });
  afterAll(async () => { await lab?.cleanup(); });

  test("removes Kilo's interfaces (kilo0, kube-bridge), chains, jumps and marked rules; every operator rule survives, KILO- comments included", async () => {
    await node.run("iptables-restore --noflush", { input: OPERATOR_V4 });
    await node.run("ip6tables-restore --noflush", { input: OPERATOR_V6 });
    const before = { v4: await rules("iptables"), v6: await rules("ip6tables") };
    expect(before.v4).toContain("KILO- office VPN, keep");

    await node.run("iptables-restore --noflush", { input: KILO_V4 });
    await node.run("ip6tables-restore --noflush", { input: KILO_V6 });
    const loaded = await rules("iptables");
    expect(loaded).toContain(":KILO-NAT");
    expect(loaded).toContain("-j KILO-IPIP");

    // Kilo's interfaces: kube-bridge is a bridge as Kilo makes it; kilo0, a WireGuard link under
    // Kilo, is a bridge here (no WireGuard kernel module on the test machine; deleted by name alike).
    await node.run("ip link add kube-bridge type bridge && ip link add kilo0 type bridge && ip link set kilo0 up");
    await node.run(`sh -s`, { input: renderStagingScript() });
    await node.run(`cat > ${STAGED_CONFIG}`, { input: `token: staged-${"6".repeat(40)}\n` });
    const script = renderUninstallScript("agent");
    const first = await node.exec("sh -s", { input: script, timeoutMs: 120000 });
    expect(first.stderr + first.stdout).not.toMatch(/warning: could not remove Kilo/);
    expect(first.code).toBe(0);

    const after = { v4: await rules("iptables"), v6: await rules("ip6tables") };
    for (const t of [after.v4, after.v6]) {
      expect(t).not.toMatch(/^:KILO-/m); // no Kilo chain
      expect(t).not.toMatch(/ -j KILO-\S+$/m); // no jump to one
    }
    expect(after.v4).not.toContain("Kilo: ");
    expect(after.v6).not.toContain("Kilo: ");
    // Exactly what was there before Kilo: nothing of the operator's is lost or reordered.
    expect(after).toEqual(before);

    expect(await node.run("ip -o link show | awk -F': ' '{print $2}' | grep -E '^(kilo0|kube-bridge)$' || true")).toBe("");

    // Our state directory went, with an uploaded config whose install never ran (a failed upload or step).
    expect(await node.run(`ls -A ${STAGING_DIR} 2>/dev/null || true`)).toBe("");
    expect((await node.exec(`test -e ${STATE_DIR}`)).code).toBe(1);

    // Idempotent: a second run finds nothing of Kilo's and changes nothing.
    const second = await node.exec("sh -s", { input: script, timeoutMs: 120000 });
    expect(second.code).toBe(0);
    expect({ v4: await rules("iptables"), v6: await rules("ip6tables") }).toEqual(before);
  });

  (hasUfw ? test : test.skip)("removes PeerFirewall's guard (hook, files, raw chain and jump) and leaves ufw's rules", async () => {
    const guardState = "echo == files; ls /etc/ufw | grep cdktf-k3s-kilo || true; echo == hook; grep -c 'cdktf-k3s-kilo' /etc/ufw/before.init || true; " +
      "echo == raw; iptables-save -t raw | grep -c cdktf-k3s-kilo-guard || true";
    const stock = await node.run("stat -c %a /etc/ufw/before.init; md5sum < /etc/ufw/before.init");
    const set = nodeRuleSet({ nodes: [{ name: "node", role: "agent", address: node.address }], adminCidrs: ["192.0.2.7/32"] }, "node");
    const fw = await node.exec("sh -s", { input: renderBatchedFirewallScript(set, LATE), timeoutMs: 120000 });
    expect(fw.code).toBe(0);
    const on = await node.run(guardState);
    expect(on).toContain("cdktf-k3s-kilo-guard.init");
    expect(on).toMatch(/== hook\n[1-9]/);
    expect(on).toMatch(/== raw\n[1-9]/);

    const script = renderUninstallScript("agent");
    for (let i = 0; i < 2; i++) {
      const r = await node.exec("sh -s", { input: script, timeoutMs: 120000 });
      expect(r.stderr + r.stdout).not.toMatch(/warning: could not remove the guard/);
      expect(r.code).toBe(0);
      expect(await node.run(guardState)).toBe("== files\n== hook\n0\n== raw\n0\n");
      // before.init is ufw's template again, with ufw's mode; ufw's own rules stay.
      expect(await node.run("stat -c %a /etc/ufw/before.init; md5sum < /etc/ufw/before.init")).toBe(stock);
      expect(await node.run("ufw show added")).toContain("comment 'cdktf-k3s-kilo:");
    }
  });
});
