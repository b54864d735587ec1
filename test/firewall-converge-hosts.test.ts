/**
 * The batched firewall converge against the per-rule path, on lab hosts with real ufw and iptables.
 *
 * Two throwaway hosts per cluster size (lab harness: own network namespace, own /etc/ufw, /etc/default
 * and /run): one is converged by the batched script PeerFirewall deploys, the other by the per-rule
 * script (one `ufw` process per rule, the previous implementation). Both go through the same history —
 * fresh host, no change, peer added, peer removed, admin network changed, operator rules present (v4
 * and v6), a wrong default policy, the operator's deny outgoing and reject incoming (kept), after
 * `ufw disable` — and after every step what ufw holds must be
 * the same on both: `ufw show added`, /etc/ufw/user.rules and user6.rules, and the iptables and
 * ip6tables filter tables (counters dropped). Sizes: 6, 50 and 200 nodes' rule sets (19, 113 and 407
 * rules on the agent whose rules are applied); the 200-node per-rule fresh run (~60-90 s) is done once.
 *
 * Then the operator-rule cases of issue 11 item 7 and the IPv6 switch of item 10, on fresh hosts:
 * the per-rule path's behaviour is shown as the "before".
 *
 * The scripts run inside the hosts (nsenter), not over SSH: this test is about what they leave.
 * Run under the lab lock: `flock /tmp/cdktf-lab.lock npx jest test/firewall-converge-hosts.test.ts`.
 */
import { spawnSync } from "child_process";
import { FirewallCluster, nodeRuleSet } from "../lib/render/firewall-rules";
import { renderBatchedFirewallScript, renderFirewallScript, sharedSources } from "../lib/render/ufw-script";
import { createLab, Lab, LabHost } from "./harness/lab";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

jest.setTimeout(1_200_000);

const canRun = process.getuid?.() === 0 && ["ufw", "iptables", "ip6tables", "sshd", "unshare", "ip"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
const describeReal = canRun ? describe : describe.skip;

const ADMIN = "192.0.2.7/32";
const OTHER_ADMIN = "192.0.2.64/26";

/** A cluster of `n` nodes (1 server, n-1 agents) with documentation addresses; rules of agent-0. */
function cluster(n: number, adminCidrs = [ADMIN]): FirewallCluster {
  return {
    nodes: [
      { name: "server", role: "server", address: "203.0.113.250" },
      ...Array.from({ length: n - 1 }, (_, i) => ({
        name: `agent-${i}`, role: "agent" as const, address: `198.51.${100 + Math.floor(i / 200)}.${1 + (i % 200)}`,
      })),
    ],
    adminCidrs,
    rateLimitSsh: true,
  };
}

type Path = "batched" | "per-rule";
function script(path: Path, c: FirewallCluster): string {
  const set = nodeRuleSet(c, "agent-0");
  // As PeerFirewall deploys it: the cluster's shared peer list, and this node's rules pointing into it.
  return path === "batched" ? renderBatchedFirewallScript(set, LATE, sharedSources(c)) : renderFirewallScript(set, LATE);
}

/** Everything ufw holds, as text: what must be equal on both hosts after each step. */
const SNAPSHOT = [
  "echo '== ufw show added'; ufw show added",
  "echo '== user.rules'; cat /etc/ufw/user.rules",
  "echo '== user6.rules'; cat /etc/ufw/user6.rules",
  "echo '== /etc/default/ufw'; grep -E '^(IPV6|DEFAULT_[A-Z]+_POLICY)=' /etc/default/ufw",
  "echo '== ufw.conf'; grep '^ENABLED=' /etc/ufw/ufw.conf",
  // Counters dropped; a builtin chain's policy kept.
  "echo '== iptables'; iptables-save -t filter | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'",
  "echo '== ip6tables'; ip6tables-save -t filter | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'",
].join("; ");

async function converge(host: LabHost, text: string): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  const t0 = Date.now();
  const r = await host.exec("cat > /tmp/fw.sh && sh /tmp/fw.sh", { input: text, timeoutMs: 600_000 });
  return { ...r, seconds: (Date.now() - t0) / 1000 };
}

let lab: Lab;
const SIZES = [6, 50, 200];
const timings: string[] = [];

describeReal("batched converge = per-rule converge, on real ufw", () => {
  beforeAll(async () => {
    lab = await createLab({
      hosts: [
        ...SIZES.flatMap((n, i) => [
          { name: `b${n}`, address: `203.0.113.${10 + 2 * i}` },
          { name: `p${n}`, address: `203.0.113.${11 + 2 * i}` },
        ]),
        { name: "op-b", address: "203.0.113.30" },
        { name: "op-p", address: "203.0.113.31" },
        { name: "v6off", address: "203.0.113.32" },
        ...Array.from({ length: 6 }, (_, i) => ({ name: `broad${i}`, address: `203.0.113.${40 + i}` })),
      ],
    });
  });
  afterAll(async () => {
    if (timings.length) console.log(timings.join("\n"));
    await lab?.cleanup();
  });

  test.each(SIZES)("%i nodes: every step leaves the same rules files, ufw rules and filter tables on both paths", async (n) => {
    // The peer that "peer added" adds and "peer removed" removes.
    const lastAddress = cluster(n + 1).nodes[n].address;
    const hosts: Record<Path, LabHost> = { "batched": lab.host(`b${n}`), "per-rule": lab.host(`p${n}`) };
    const steps: Array<{ name: string; before?: string; cluster: FirewallCluster; check?: (s: Record<Path, string>, out: Record<Path, string>) => void }> = [
      { name: "fresh host", cluster: cluster(n) },
      { name: "no change", cluster: cluster(n), check: (_s, out) => expect(out.batched).toMatch(/firewall converged \(0 change\(s\)\)/) },
      { name: "peer added", cluster: cluster(n + 1), check: (_s, out) => expect(out.batched).toMatch(/firewall converged \(2 change\(s\)\)/) },
      { name: "peer removed", cluster: cluster(n), check: (s) => expect(s.batched).not.toContain(` ${lastAddress} `) },
      { name: "admin network changed", cluster: cluster(n, [OTHER_ADMIN]), check: (s) => {
        expect(s.batched).toContain("ufw limit from 192.0.2.64/26 to any port 22 proto tcp");
        expect(s.batched).not.toContain("192.0.2.7");
      } },
      {
        name: "operator rules present (v4 and v6)",
        before: "ufw allow proto tcp from 192.0.2.50 to any port 8080 >/dev/null && ufw allow proto tcp from 2001:db8::5 to any port 8443 comment 'operator v6' >/dev/null",
        cluster: cluster(n),
        check: (s) => {
          expect(s.batched).toContain("ufw allow from 192.0.2.50 to any port 8080 proto tcp\n");
          expect(s.batched).toContain("ufw allow from 2001:db8::5 to any port 8443 proto tcp comment 'operator v6'");
          expect(s.batched).toMatch(/-A ufw6-user-input -s 2001:db8::5\/128 -p tcp -m tcp --dport 8443 -j ACCEPT/);
        },
      },
      { name: "wrong default policy", before: "ufw default allow incoming >/dev/null", cluster: cluster(n), check: (s) => expect(s.batched).toContain('DEFAULT_INPUT_POLICY="DROP"') },
      {
        name: "operator's deny outgoing and reject incoming kept",
        before: "ufw default deny outgoing >/dev/null && ufw default reject incoming >/dev/null",
        cluster: cluster(n),
        check: (s, out) => {
          expect(s.batched).toContain('DEFAULT_INPUT_POLICY="REJECT"\nDEFAULT_OUTPUT_POLICY="DROP"');
          expect(out.batched).toMatch(/firewall converged \(0 change\(s\)\)/);
        },
      },
      { name: "after ufw disable", before: "ufw disable >/dev/null", cluster: cluster(n), check: (s) => expect(s.batched).toMatch(/ENABLED=yes/) },
    ];
    for (const step of steps) {
      const snaps = {} as Record<Path, string>;
      const outs = {} as Record<Path, string>;
      for (const path of ["batched", "per-rule"] as Path[]) {
        const host = hosts[path];
        if (step.before) await host.run(step.before);
        const r = await converge(host, script(path, step.cluster));
        if (r.code !== 0) throw new Error(`${n} nodes, ${step.name}, ${path}: exit ${r.code}: ${r.stderr}`);
        timings.push(`${n} nodes, ${step.name}, ${path}: ${r.seconds.toFixed(2)} s`);
        outs[path] = r.stdout;
        snaps[path] = await host.run(SNAPSHOT);
      }
      // The step's name in the message when they differ.
      expect({ step: step.name, snapshot: snaps.batched }).toEqual({ step: step.name, snapshot: snaps["per-rule"] });
      expect(snaps.batched).toMatch(/^ENABLED=yes$/m);
      step.check?.(snaps, outs);
    }
  });

  test("an operator's rule that matches ours except for its comment is left alone (per-rule path: taken over)", async () => {
    const before = "ufw allow proto tcp from 192.0.2.7 to any port 22 comment 'office ssh' >/dev/null";
    const c = { ...cluster(6), rateLimitSsh: false };
    const moved = { ...cluster(6, [OTHER_ADMIN]), rateLimitSsh: false };
    const b = lab.host("op-b");
    const p = lab.host("op-p");
    await b.run(before);
    await p.run(before);
    const rb = await converge(b, script("batched", c));
    expect(rb.code).toBe(0);
    expect(rb.stdout).toContain("left alone, the operator's rule already covers ours: ufw allow from 192.0.2.7 to any port 22 proto tcp comment 'office ssh'");
    // The admin network moves: our rules change, the operator's rule stays, under its own comment.
    expect((await converge(b, script("batched", moved))).code).toBe(0);
    const addedB = await b.run("ufw show added");
    expect(addedB).toContain("ufw allow from 192.0.2.7 to any port 22 proto tcp comment 'office ssh'");
    expect(addedB).toContain("ufw allow from 192.0.2.64/26 to any port 22 proto tcp comment 'cdktf-k3s-kilo:");

    // The per-rule path (before the fix): ufw replaces the operator's rule with ours, which the
    // admin change then deletes.
    expect((await converge(p, script("per-rule", c))).code).toBe(0);
    expect((await converge(p, script("per-rule", moved))).code).toBe(0);
    expect(await p.run("ufw show added")).not.toContain("192.0.2.7 ");
  });

  test("an operator's deny on traffic we would allow fails the step, naming the rule, and changes nothing", async () => {
    const b = lab.host("op-b");
    const deny = "ufw deny proto tcp from 198.51.100.2 to any port 10250 comment 'no kubelet from agent-1' >/dev/null";
    await b.run(deny);
    const before = await b.run(SNAPSHOT);
    const r = await converge(b, script("batched", cluster(6)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: the operator's own ufw rule(s) deny traffic this cluster needs; PeerFirewall does not override them and changed nothing: " +
      "ufw deny from 198.51.100.2 to any port 10250 proto tcp comment 'no kubelet from agent-1' (wanted: ufw allow proto tcp from 198.51.100.2 to any port 10250)");
    expect(await b.run(SNAPSHOT)).toBe(before);

    // The per-rule path (before the fix) turned the deny into our allow.
    const p = lab.host("op-p");
    await p.run(deny);
    expect((await converge(p, script("per-rule", cluster(6)))).code).toBe(0);
    const added = await p.run("ufw show added");
    expect(added).not.toContain("ufw deny from 198.51.100.2");
    expect(added).toMatch(/ufw allow from 198\.51\.100\.2 to any port 10250 proto tcp comment 'cdktf-k3s-kilo:/);
  });

  test("IPV6=no in /etc/default/ufw fails the step with a message (IPv6 would be unfiltered)", async () => {
    const h = lab.host("v6off");
    await h.run("sed -i 's/^IPV6=.*/IPV6=no/' /etc/default/ufw");
    const r = await converge(h, script("batched", cluster(6)));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: IPV6=no in /etc/default/ufw: ufw leaves IPv6 traffic unfiltered on this host, so PeerFirewall cannot protect it");
    expect(await h.run("ufw show added")).toContain("(None)");
    await h.run("sed -i 's/^IPV6=.*/IPV6=yes/' /etc/default/ufw");
    expect((await converge(h, script("batched", cluster(6)))).code).toBe(0);
  });

  describe("the operator's broader rules", () => {
    // cluster(6): agent-0 (198.51.100.1) has the peers 203.0.113.250 (the server) and 198.51.100.2-5; admin 192.0.2.7/32.
    const c = () => ({ ...cluster(6), rateLimitSsh: false });
    const ufwState = "ufw show added; cat /etc/ufw/user.rules /etc/ufw/user6.rules; iptables-save -t filter | grep -v '^#' | sed 's/ \\[[0-9]*:[0-9]*\\]$//'";

    test.each([
      ["a deny of the peers' network", "ufw deny from 198.51.100.0/24", "ufw deny from 198.51.100.0/24", "ufw allow proto udp from 198.51.100.2 to any port 51820", "ufw delete deny from 198.51.100.0/24"],
      ["a deny of the kubelet port from anywhere", "ufw deny 10250/tcp", "ufw deny 10250/tcp", "ufw allow proto tcp from 203.0.113.250 to any port 10250", "ufw delete deny 10250/tcp"],
      ["a reject of the private ranges", "ufw reject from 10.0.0.0/8", "ufw reject from 10.0.0.0/8", "ufw allow in on kilo0 from 10.42.0.0/16", "ufw delete reject from 10.0.0.0/8"],
    ])("%s ahead of the cluster's rules fails the step naming the rule and the fix, and changes nothing", async (_name, add, shown, blocked, fix) => {
      const h = lab.host(`broad${_name.includes("peers") ? 0 : _name.includes("kubelet") ? 1 : 2}`);
      await h.run(`${add} >/dev/null`);
      const before = await h.run(ufwState);
      const r = await converge(h, script("batched", c()));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("error: the operator's own ufw rule(s) deny traffic this cluster needs; PeerFirewall does not override them and changed nothing: ");
      expect(r.stderr).toContain(`${shown} (blocks: ${blocked}`);
      expect(r.stderr).toContain(`remove it: ${fix}`);
      expect(await h.run(ufwState)).toBe(before);
    });

    test("a deny that comes after the cluster's rules blocks nothing of theirs and passes; a later rule of ours behind it fails", async () => {
      const h = lab.host("broad3");
      expect((await converge(h, script("batched", c()))).code).toBe(0);
      // Appended after our allows: the peers still get in first, everyone else hits it.
      await h.run("ufw deny 10250/tcp >/dev/null");
      const again = await converge(h, script("batched", c()));
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/firewall converged \(0 change\(s\)\)/);
      // A new peer's kubelet rule would be appended behind the deny.
      const grown = await converge(h, script("batched", { ...cluster(7), rateLimitSsh: false }));
      expect(grown.code).toBe(1);
      expect(grown.stderr).toContain("ufw deny 10250/tcp (blocks: ufw allow proto tcp from 198.51.100.6 to any port 10250");
    });

    test("a broad allow (22/tcp or OpenSSH from anywhere, 10250 from anywhere) is warned about by name; an unrelated public port and a narrow deny are not", async () => {
      const h = lab.host("broad4");
      await h.run("ufw allow 22/tcp >/dev/null && ufw allow OpenSSH >/dev/null && ufw allow in on eth0 to any port 10250 >/dev/null && ufw allow 80/tcp >/dev/null && ufw deny from 192.0.2.99 >/dev/null");
      const r = await converge(h, script("batched", c()));
      expect(r.code).toBe(0);
      const warnings = r.stderr.split("\n").filter((l) => l.includes("warning: the operator's own rule"));
      expect(warnings).toHaveLength(3);
      expect(r.stderr).toContain("warning: the operator's own rule `ufw allow 22/tcp` opens 22/tcp to anywhere, where PeerFirewall allows only certain sources " +
        "(ufw allow proto tcp from 192.0.2.7/32 to any port 22): this host stays open there. If PeerFirewall's rules should decide, remove it: ufw delete allow 22/tcp");
      expect(r.stderr).toContain("warning: the operator's own rule `ufw allow OpenSSH` opens 22/tcp to anywhere");
      expect(r.stderr).toContain("warning: the operator's own rule `ufw allow in on eth0 to any port 10250` opens 10250/tcp to anywhere");
      expect(r.stderr).not.toContain("80/tcp");
      expect(r.stderr).not.toContain("192.0.2.99");
      // Once per rule, not once per address family; and again on every run (it is still open).
      expect((await converge(h, script("batched", c()))).stderr.split("\n").filter((l) => l.includes("warning: the operator's own rule"))).toHaveLength(3);
    });
  });
});
