/**
 * The converge script: shellcheck-clean, and executed for real with real ufw and iptables —
 * but only inside a throwaway sandbox (a new network namespace and a private mount namespace
 * with its own /etc/ufw, /etc/default and /run), never against this machine's own firewall.
 */
import { spawnSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { clusterRuleSets, FirewallCluster, nodeRuleSet, Protocol, ruleSetText, ruleWords } from "../lib/render/firewall-rules";
import { renderBatchedFirewallScript, renderFirewallScript, renderRuleData } from "../lib/render/ufw-script";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const ADMIN = "198.51.100.7/32";

function cluster(agents = 2, extra: Partial<FirewallCluster> = {}): FirewallCluster {
  return {
    nodes: [
      { name: "server", role: "server", address: "203.0.113.10" },
      ...Array.from({ length: agents }, (_, i) => ({ name: `agent-${i}`, role: "agent" as const, address: `203.0.113.${11 + i}` })),
    ],
    adminCidrs: [ADMIN],
    // The rate-limited SSH rule is the harder case for the converge step (ufw stores and prints
    // `limit` rules differently), so these tests opt in to it.
    rateLimitSsh: true,
    ...extra,
  };
}

const canSandbox = process.getuid?.() === 0 && spawnSync("unshare", ["--net", "--mount", "true"]).status === 0
  && spawnSync("sh", ["-c", "command -v ufw && command -v iptables"]).status === 0;

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "ufw-script-")); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

/**
 * Run `body` as root in a fresh network namespace and private mount namespace, with private
 * copies of ufw's configuration. Everything it changes disappears when it exits.
 */
function sandbox(body: string, files: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const box = mkdtempSync(join(dir, "box-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(box, name), text, { mode: 0o755 });
  const prelude = [
    "set -eu",
    // The private mount namespace makes these mounts invisible outside (unshare: propagation private).
    "mount -t tmpfs tmpfs /run",
    `cp -a /etc/ufw ${box}/etc-ufw && cp -a /etc/default ${box}/etc-default`,
    `mount --bind ${box}/etc-ufw /etc/ufw && mount --bind ${box}/etc-default /etc/default`,
    "ip link set lo up",
    `cd ${box}`,
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C",
    "",
  ].join("\n");
  const script = body.replace(/^=== (\S+)$/gm, "echo '=== $1'");
  const r = spawnSync("unshare", ["--net", "--mount", "--fork", "--", "sh", "-c", prelude + script], {
    encoding: "utf8", timeout: 120000, killSignal: "SIGKILL",
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Split `=== name` sections of a sandbox's output. */
function sections(out: string): Record<string, string> {
  const s: Record<string, string> = {};
  let cur = "";
  for (const line of out.split("\n")) {
    const m = /^=== (\S+)$/.exec(line);
    if (m) { cur = m[1]; s[cur] = ""; continue; }
    if (cur) s[cur] += line + "\n";
  }
  return s;
}

/** What "the firewall" is: ufw's rules and defaults, and iptables' filter table without counters. */
const SNAPSHOT = "ufw status verbose; ufw show added; iptables-save -t filter | grep -v '^[#:]'; ip6tables-save -t filter | grep -v '^[#:]'";

describe("ufw converge script", () => {
  test("passes shellcheck for every shape of rule set", () => {
    const shapes = [
      ...clusterRuleSets(cluster(2)),
      nodeRuleSet(cluster(1, { adminCidrs: [] }), "server"),
      nodeRuleSet(cluster(1, {
        nodes: [
          { name: "s1", role: "server", address: "203.0.113.10" },
          { name: "s2", role: "server", address: "203.0.113.11", sshPort: 2222, sshFrom: ["192.0.2.1"] },
        ],
        apiCidrs: ["192.0.2.0/24"],
        extraRules: [{ port: 30000, endPort: 32767, from: ["192.0.2.0/24"] }, { port: 53, protocol: Protocol.ANY }],
      }), "s2"),
    ];
    for (const script of shapes.flatMap((set) => [renderFirewallScript(set, LATE), renderBatchedFirewallScript(set, LATE)])) {
      const r = spawnSync("shellcheck", ["-s", "sh", "-"], { input: script, encoding: "utf8", timeout: 60000 });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });

  test("batched: the node's rules as compact JSON, each peer list once, in rulesFor's order when expanded", () => {
    const set = nodeRuleSet(cluster(5), "server");
    const data = JSON.parse(renderRuleData(set, LATE));
    const expanded: string[] = data.rules.flatMap((e: Array<string | number>) => {
      const i = e.findIndex((w) => typeof w === "number");
      return i < 0 ? [e.join(" ")] : data.sources[e[i] as number].map((s: string) => [...e.slice(0, i), s, ...e.slice(i + 1)].join(" "));
    });
    expect(expanded).toEqual(set.rules.map((r) => ruleWords(r).join(" ")));
    // The five agents' addresses: one list shared by the WireGuard, API and kubelet rules.
    const peers = ["203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14", "203.0.113.15"];
    expect(data.sources.filter((l: string[]) => JSON.stringify(l) === JSON.stringify(peers))).toHaveLength(1);
    const script = renderBatchedFirewallScript(set, LATE);
    expect(script).not.toMatch(/^\s*ufw\s+(--force\s+)?(reset|reload)/m);
    expect(script).not.toMatch(/\[[^\]]*"(reset|reload)"/);
    expect(script.split("\n").slice(0, 4).join("\n")).toMatch(/^#!\/bin\/sh\n.*\nset -eu\n/);
  });

  test("quotes every value, stops at the first error, never resets ufw", () => {
    const script = renderFirewallScript(nodeRuleSet(cluster(2), "server"), LATE);
    expect(script.split("\n").slice(0, 4).join("\n")).toMatch(/^#!\/bin\/sh\n.*\nset -eu\n/);
    expect(script).toContain("want 'limit' 'proto' 'tcp' 'from' '198.51.100.7/32' 'to' 'any' 'port' '22'");
    expect(script).toContain("want 'route' 'allow' 'in' 'on' 'kube-bridge' 'from' '10.42.0.0/16' 'to' 'any'");
    expect(script).not.toMatch(/ufw\s+(--force\s+)?reset/);
    expect(script).toContain("ufw --force enable");
    expect(script).toMatch(/timeout 600 apt-get install -y -q ufw/);
    // SSH is the first rule and every rule is added before ufw is enabled.
    const firstWant = script.indexOf("\nwant ");
    expect(script.slice(firstWant, script.indexOf("\n", firstWant + 1))).toMatch(/'limit'.*'port' '22'$/);
    expect(script.lastIndexOf("\nwant ")).toBeLessThan(script.indexOf("ufw --force enable"));
  });

  (canSandbox ? test : test.skip)("converges real ufw: adds, re-runs unchanged, drops a removed peer, keeps the operator's rule", () => {
    const full = renderFirewallScript(nodeRuleSet(cluster(2), "server"), LATE);
    const c = cluster(2);
    const withoutAgent1 = renderFirewallScript(nodeRuleSet({ ...c, nodes: c.nodes.filter((n) => n.name !== "agent-1") }, "server"), LATE);
    const r = sandbox([
      "=== first",
      "sh ./full.sh",
      "=== snap1",
      SNAPSHOT,
      "=== second",
      "sh ./full.sh",
      "=== snap2",
      SNAPSHOT,
      "=== operator",
      "ufw allow proto tcp from 192.0.2.50 to any port 8080 >/dev/null",
      "ufw route allow in on eth9 to 192.0.2.0/24 comment 'operator forward' >/dev/null",
      "=== removed",
      "sh ./removed.sh",
      "=== snap3",
      SNAPSHOT,
      "=== readded",
      "sh ./full.sh",
      "=== snap4",
      "ufw show added",
    ].join("\n"), { "full.sh": full, "removed.sh": withoutAgent1 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    const expected = nodeRuleSet(cluster(2), "server").rules;

    expect(s.first).toMatch(/added: ufw limit proto tcp from 198\.51\.100\.7\/32 to any port 22/);
    expect(s.first).toMatch(/ufw enabled/);
    expect(s.first).toMatch(new RegExp(`converged \\(${expected.length + 1} change`));
    expect(s.snap1).toMatch(/^Status: active$/m);
    expect(s.snap1).toMatch(/Default: deny \(incoming\), allow \(outgoing\), (deny|disabled) \(routed\)/);
    // Every rule is there under the tag computed at synth.
    for (const rule of expected) expect(s.snap1).toContain(`comment '${rule.tag}'`);
    expect(s.snap1).toMatch(/-A ufw-user-input -s 198\.51\.100\.7\/32 -p tcp -m tcp --dport 22 .*-j ufw-user-limit/);
    expect(s.snap1).toMatch(/-A ufw-user-input -s 203\.0\.113\.12\/32 -p udp -m udp --dport 51820 -j ACCEPT/);
    expect(s.snap1).toMatch(/-A ufw-user-forward -s 10\.42\.0\.0\/16 -i kube-bridge -j ACCEPT/);

    // A second run changes nothing at all.
    expect(s.second).toMatch(/converged \(0 change\(s\)\)/);
    expect(s.second).not.toMatch(/added|deleted|enabled/);
    expect(s.snap2).toBe(s.snap1);

    // Removing agent-1 deletes exactly its rules; the operator's rules survive.
    const gone = expected.filter((x) => x.from === "203.0.113.12");
    expect(gone.map((x) => x.purpose).sort()).toEqual(["kube-apiserver", "kubelet", "wireguard"]);
    expect((s.removed.match(/deleted stale rule/g) ?? []).length).toBe(gone.length);
    expect(s.removed).not.toMatch(/added:/);
    expect(s.snap3).not.toContain("203.0.113.12");
    for (const x of gone) expect(s.snap3).not.toContain(x.tag!);
    expect(s.snap3).toContain("ufw allow from 192.0.2.50 to any port 8080 proto tcp");
    expect(s.snap3).toContain("ufw route allow in on eth9 to 192.0.2.0/24 comment 'operator forward'");
    expect(s.snap3).toContain("203.0.113.11");

    // Adding it back restores them.
    expect((s.readded.match(/added:/g) ?? []).length).toBe(gone.length);
    for (const x of gone) expect(s.snap4).toContain(x.tag!);
  });

  (canSandbox ? test : test.skip)("modules planted in the cwd, PYTHONPATH or the user site are never imported by the root converge", () => {
    // The converge runs ufw's interpreter as root; the login user's cwd (where remote-exec starts)
    // and environment are theirs to fill. Every module the program imports, and the hooks Python
    // imports by itself, are planted there; each leaves a marker if it is ever executed.
    const script = renderBatchedFirewallScript(nodeRuleSet(cluster(1), "server"), LATE);
    const names = ["json", "hashlib", "os", "re", "subprocess", "sys", "gettext", "ufw", "sitecustomize", "usercustomize"];
    const plant = (name: string) => `import os as _o; open(${JSON.stringify(name)}.join([_o.environ.get("MARK", "/nonexistent/"), ""]), "w").write("uid %d" % _o.getuid())\n`;
    const files: Record<string, string> = { "fw.sh": script };
    for (const n of names) files[`${n}.py`] = plant(n);
    const r = sandbox([
      "export MARK=\"$PWD/ran-\" HOME=\"$PWD\" PYTHONPATH=\"$PWD\"",
      "mkdir ufw && cp ufw.py ufw/__init__.py",
      "usp=$(cd / && python3 -I -c 'import site; print(site.getusersitepackages())')",
      "mkdir -p \"$usp\" && cp usercustomize.py sitecustomize.py json.py \"$usp\"/",
      "sh ./fw.sh || echo \"fw.sh failed: $?\"",
      "=== ran",
      "ls | grep '^ran-' || true",
    ].join("\n"), files);
    expect(sections(r.stdout).ran.trim()).toBe("");
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toMatch(/fw\.sh failed/);
    expect(r.stdout).toMatch(/firewall converged/);
  });

  (canSandbox ? test : test.skip)("changing the admin network replaces the SSH rule, adding the new one before deleting the old", () => {
    const before = renderFirewallScript(nodeRuleSet(cluster(1), "agent-0"), LATE);
    const after = renderFirewallScript(nodeRuleSet(cluster(1, { adminCidrs: ["192.0.2.0/24"] }), "agent-0"), LATE);
    const r = sandbox("sh ./before.sh >/dev/null\nsh ./after.sh\n=== added\nufw show added", { "before.sh": before, "after.sh": after });
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    const add = lines.findIndex((l) => /added: ufw limit proto tcp from 192\.0\.2\.0\/24/.test(l));
    const del = lines.findIndex((l) => /deleted stale rule: ufw limit from 198\.51\.100\.7 to any port 22 proto tcp/.test(l));
    expect(add).toBeGreaterThanOrEqual(0);
    expect(del).toBeGreaterThan(add);
    const added = sections(r.stdout).added;
    expect(added).toContain("ufw limit from 192.0.2.0/24 to any port 22 proto tcp");
    expect(added).not.toContain("198.51.100.7");
  });

  (canSandbox ? test : test.skip)("without ufw and apt-get it stops with a clear message, changing nothing", () => {
    const script = renderFirewallScript(nodeRuleSet(cluster(1), "server"), LATE);
    // Hide ufw and apt-get inside the sandbox only (a bind mount of an empty, non-executable file).
    const r = sandbox([
      "for b in /usr/sbin/ufw /usr/bin/apt-get; do [ -e \"$b\" ] && mount --bind /dev/null \"$b\"; done",
      "sh ./fw.sh",
    ].join("\n"), { "fw.sh": script });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: ufw is not installed and this host has no apt-get: PeerFirewall supports Debian and Ubuntu hosts/);
  });

  (canSandbox ? test : test.skip)("an invalid value from Terraform fails the step instead of being skipped", () => {
    // What a token that resolves to garbage would produce at apply time.
    const set = nodeRuleSet({
      nodes: [{ name: "s", role: "server", address: "203.0.113.10" }, { name: "a", role: "agent", address: "not-an-ip" }],
      adminCidrs: [ADMIN],
    }, "s");
    const r = sandbox("sh ./fw.sh", { "fw.sh": renderFirewallScript(set, LATE) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: ufw refused the rule: ufw allow proto udp from not-an-ip to any port 51820/);
  });

  test("the guard: its init script passes shellcheck; the rule data and the trigger text carry its ranges and interfaces", () => {
    const py = readFileSync(join(__dirname, "..", "lib", "render", "ufw-converge.py"), "utf8");
    const init = /GUARD_INIT = r"""([\s\S]*?)"""/.exec(py)![1];
    expect(init.split("\n").slice(0, 9).join("\n")).toMatch(/^#!\/bin\/sh\n[\s\S]*\nset -eu\n/);
    const r = spawnSync("shellcheck", ["-s", "sh", "-"], { input: init, encoding: "utf8", timeout: 60000 });
    expect(r.stdout + r.stderr).toBe("");
    const set = nodeRuleSet(cluster(1, { podCidr: "10.44.0.0/16", kiloSubnet: "10.9.0.0/16" }), "server");
    expect(JSON.parse(renderRuleData(set, LATE)).guard).toEqual({
      ranges: ["10.44.0.0/16", "10.43.0.0/16", "10.9.0.0/16"], interfaces: ["lo", "kilo0", "kube-bridge", "tunl0"],
    });
    expect(ruleSetText(set)).toContain("guard drop to or from 10.44.0.0/16 unless in on lo kilo0 kube-bridge tunl0\n");
  });

  const GUARD_STATE = [
    "=== v4", "iptables -t raw -S cdktf-k3s-kilo-guard 2>/dev/null || echo 'no chain'", "iptables -t raw -S PREROUTING",
    "=== v6", "ip6tables -t raw -S cdktf-k3s-kilo-guard 2>/dev/null || echo 'no chain'", "ip6tables -t raw -S PREROUTING",
    "=== files", "ls /etc/ufw | grep cdktf || true", "grep -c '^# BEGIN cdktf-k3s-kilo guard' /etc/ufw/before.init || true",
  ].join("\n");

  (canSandbox ? test : test.skip)("the guard per address family: IPv6 ranges in ip6tables' raw table, unchanged on a re-run, removed with them", () => {
    const v6 = nodeRuleSet(cluster(1, { podCidr: "fd00:42::/56", serviceCidr: "fd00:43::/112" }), "server");
    const v4 = nodeRuleSet(cluster(1), "server");
    const r = sandbox([
      "=== first", "sh ./v6.sh", GUARD_STATE.replace(/=== (\S+)/g, "=== $1-a"),
      "=== second", "sh ./v6.sh",
      "=== third", "sh ./v4.sh", GUARD_STATE.replace(/=== (\S+)/g, "=== $1-b"),
    ].join("\n"), { "v6.sh": renderBatchedFirewallScript(v6, LATE), "v4.sh": renderBatchedFirewallScript(v4, LATE) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    const iface = (x: string) => ["lo", "kilo0", "kube-bridge", "tunl0"].map((i) => `-A cdktf-k3s-kilo-guard -i ${i} -j RETURN\n`).join("") + x;
    const drops = (...nets: string[]) => nets.map((n) => `-A cdktf-k3s-kilo-guard -d ${n} -j DROP\n-A cdktf-k3s-kilo-guard -s ${n} -j DROP\n`).join("");
    expect(s["v4-a"]).toBe("-N cdktf-k3s-kilo-guard\n" + iface(drops("10.4.0.0/16")) + "-P PREROUTING ACCEPT\n-A PREROUTING -j cdktf-k3s-kilo-guard\n");
    expect(s["v6-a"]).toBe("-N cdktf-k3s-kilo-guard\n" + iface(drops("fd00:42::/56", "fd00:43::/112")) + "-P PREROUTING ACCEPT\n-A PREROUTING -j cdktf-k3s-kilo-guard\n");
    expect(s["files-a"]).toBe("cdktf-k3s-kilo-guard.init\ncdktf-k3s-kilo-guard.rules\ncdktf-k3s-kilo-guard6.rules\n1\n");
    expect(s.second).toMatch(/converged \(0 change\(s\)\)/);
    expect(s.second).not.toMatch(/guard:/);
    // Back to IPv4 ranges: the IPv6 chain, its jump and its file go.
    expect(s["v4-b"]).toBe("-N cdktf-k3s-kilo-guard\n" + iface(drops("10.42.0.0/16", "10.43.0.0/16", "10.4.0.0/16")) + "-P PREROUTING ACCEPT\n-A PREROUTING -j cdktf-k3s-kilo-guard\n");
    expect(s["v6-b"]).toBe("no chain\n-P PREROUTING ACCEPT\n");
    expect(s["files-b"]).toBe("cdktf-k3s-kilo-guard.init\ncdktf-k3s-kilo-guard.rules\n1\n\n");
  });

  (canSandbox ? test : test.skip)("a guard range from Terraform that is not a CIDR, or an operator's before.init ufw does not run, fails the step and changes nothing", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const bad = { ...set, guard: { ...set.guard, ranges: ["10.42.0.0/16 -j ACCEPT"] } };
    const r = sandbox([
      "=== bad", "sh ./bad.sh || echo \"exit $?\"", "ufw show added | grep -c cdktf || true", "ls /etc/ufw | grep -c cdktf || true",
      "=== custom", "printf '#!/bin/sh\\necho operator\\n' > /etc/ufw/before.init && chmod 0640 /etc/ufw/before.init",
      "sh ./good.sh || echo \"exit $?\"", "ufw show added | grep -c cdktf || true", "ls /etc/ufw | grep -c cdktf || true", "cat /etc/ufw/before.init",
    ].join("\n"), { "bad.sh": renderBatchedFirewallScript(bad, LATE), "good.sh": renderBatchedFirewallScript(set, LATE) });
    const s = sections(r.stdout);
    expect(r.stderr).toContain("error: the guard's range \"10.42.0.0/16 -j ACCEPT\" (pod, service or Kilo network) is not a CIDR block such as 10.42.0.0/16; nothing was changed");
    expect(s.bad).toBe("exit 1\n0\n0\n");
    expect(r.stderr).toContain("error: /etc/ufw/before.init is not executable and is not ufw's template, so ufw does not run it and PeerFirewall will not start running your content; " +
      "nothing was changed. Make it executable if it should run (chmod 0750 /etc/ufw/before.init), or restore ufw's template");
    expect(s.custom).toBe("exit 1\n0\n0\n#!/bin/sh\necho operator\n\n");
  });

  (canSandbox ? test : test.skip)("a ufw other than 0.36 is refused before anything changes", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const state = "ufw status verbose; tar -C /etc -cf - ufw default/ufw | sha256sum; iptables-save | grep -v '^#' || true";
    const r = sandbox([
      // The same ufw, saying it is 0.35 (the version line is what the converge reads), bound over it.
      "ufw_bin=$(command -v ufw) && cp \"$ufw_bin\" /run/ufw && sed -i 's/^version = \".*\"/version = \"0.35.1\"/' /run/ufw && mount --bind /run/ufw \"$ufw_bin\"",
      "=== before", state,
      "=== run", "sh ./fw.sh >/dev/null 2>run.err && echo 'exit 0' || echo \"exit $?\"", "cat run.err",
      "=== after", state,
    ].join("\n"), { "fw.sh": renderBatchedFirewallScript(set, LATE) });
    const s = sections(r.stdout);
    expect(s.run).toMatch(/^exit 1\n/);
    expect(s.run).toMatch(/ufw 0\.35\.1 at \/usr\/s?bin\/ufw: PeerFirewall's converge writes ufw's rules files itself and knows their layout only in ufw 0\.36 .*; nothing was changed/);
    expect(s.before).toContain("Status: inactive");
    expect(s.after.trimEnd()).toBe(s.before.trimEnd());
  });

  (canSandbox ? test : test.skip)("an absent before.init is created, executable, holding only the hook; ufw reload then loads the guard", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const r = sandbox([
      "rm -f /etc/ufw/before.init",
      "sh ./fw.sh >/dev/null",
      "iptables -t raw -D PREROUTING -j cdktf-k3s-kilo-guard",
      "=== created", "stat -c %a /etc/ufw/before.init", "cat /etc/ufw/before.init",
      "=== reloaded", "ufw reload >/dev/null", "iptables -t raw -S PREROUTING",
    ].join("\n"), { "fw.sh": renderBatchedFirewallScript(set, LATE) });
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    expect(s.created).toMatch(/^7[0-7]0\n#!\/bin\/sh\n# BEGIN cdktf-k3s-kilo guard .*\nif \[ -x \/etc\/ufw\/cdktf-k3s-kilo-guard\.init \]; then .*\n# END cdktf-k3s-kilo guard\n$/);
    expect(s.reloaded).toContain("-A PREROUTING -j cdktf-k3s-kilo-guard\n");
  });

  (canSandbox ? test : test.skip)("the guard's files are written through a new temporary file, never through a symlink left at its name", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const r = sandbox([
      "echo 'kept' > /run/victim",
      "for f in cdktf-k3s-kilo-guard.rules cdktf-k3s-kilo-guard.init before.init; do ln -s /run/victim \"/etc/ufw/$f.cdktf-k3s-kilo.tmp\"; done",
      "sh ./fw.sh >/dev/null",
      "=== after", "cat /run/victim", "ls -A /etc/ufw | grep -c 'cdktf-k3s-kilo.tmp$' || true", "grep -c -- '-j DROP' /etc/ufw/cdktf-k3s-kilo-guard.rules",
    ].join("\n"), { "fw.sh": renderBatchedFirewallScript(set, LATE) });
    expect(r.code).toBe(0);
    expect(sections(r.stdout).after).toMatch(/^kept\n0\n[1-9]\d*\n/);
  });

  (canSandbox ? test : test.skip)("on a host where ufw was off, a guard that does not load when ufw is enabled fails the step, with ufw's rules active", () => {
    const set = nodeRuleSet(cluster(1, { podCidr: "fd00:42::/56", serviceCidr: "fd00:43::/112" }), "server");
    // ip6tables-restore refusing the guard's input (and only it) stands for a kernel without
    // ip6tables' raw table: the alternatives directory is swapped for a copy that points
    // ip6tables-restore at a wrapper, inside the sandbox's mount namespace only.
    const wrapper = [
      "#!/bin/sh",
      "input=$(cat)",
      "case \"$input\" in *cdktf-k3s-kilo-guard*) echo 'stand-in: no raw table for IPv6' >&2; exit 1 ;; esac",
      "printf '%s\\n' \"$input\" | \"$(cat /run/real-ip6tables-restore)\" ip6tables-restore \"$@\"",
    ].join("\n") + "\n";
    const r = sandbox([
      "readlink -f /etc/alternatives/ip6tables-restore > /run/real-ip6tables-restore",
      "cp -a /etc/alternatives /run/alternatives && cp ./wrapper.sh /run/ip6tables-restore && chmod 0755 /run/ip6tables-restore",
      "ln -sf /run/ip6tables-restore /run/alternatives/ip6tables-restore && mount --bind /run/alternatives /etc/alternatives",
      "=== run", "sh ./fw.sh >/dev/null 2>run.err && echo 'exit 0' || echo \"exit $?\"", "cat run.err",
      "=== ufw", "grep '^ENABLED=' /etc/ufw/ufw.conf", "iptables -S INPUT | head -1", "iptables -t raw -S PREROUTING",
    ].join("\n"), { "fw.sh": renderBatchedFirewallScript(set, LATE), "wrapper.sh": wrapper });
    const s = sections(r.stdout);
    expect(s.run).toMatch(/^exit 1\n/);
    expect(s.run).toContain("error: ufw is enabled, but the guard did not load (/etc/ufw/cdktf-k3s-kilo-guard.init start): ");
    expect(s.run).toContain("stand-in: no raw table for IPv6");
    // ufw itself is on, with its policy: the failure is the guard's alone.
    expect(s.ufw).toMatch(/^ENABLED=yes\n-P INPUT DROP\n/);
  });

  (canSandbox ? test : test.skip)("a guard that cannot load never keeps ufw from starting: `ufw-init restart` (ufw's init.d path) loads ufw's rules and says the guard is missing", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const input = "iptables -S INPUT | head -1; iptables -S ufw-user-input 2>/dev/null | grep -c -- '^-A ufw-user-input' || true";
    const r = sandbox([
      "sh ./fw.sh >/dev/null",
      // A rules file iptables-restore refuses stands for any load failure (a held xtables lock, a missing ip6tables).
      "echo 'not a rules file' > /etc/ufw/cdktf-k3s-kilo-guard.rules",
      "=== restart", "/lib/ufw/ufw-init restart >/dev/null 2>restart.err && echo 'exit 0' || echo \"exit $?\"", "grep -c 'guard.init start. failed, so the guard is not as ufw.s state says; ufw goes on' restart.err || true", input,
      "=== guard", "iptables -t raw -S PREROUTING",
    ].join("\n"), { "fw.sh": renderBatchedFirewallScript(set, LATE) });
    const s = sections(r.stdout);
    // ufw's policies and the cluster's rules are back, though the guard is not.
    // (ufw's restart runs before.init start twice: once itself, once in its start function.)
    expect(s.restart).toMatch(/^exit 0\n[12]\n-P INPUT DROP\n[1-9]\d*\n$/);
    expect(s.guard).toBe("-P PREROUTING ACCEPT\n\n");
  });

  (canSandbox ? test : test.skip)("the operator's outgoing policy is left as set (with a warning when it is not allow); reject counts as closed; an open incoming or routed policy is closed", () => {
    const set = nodeRuleSet(cluster(1), "server");
    const policies = "grep -E '^DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY=' /etc/default/ufw";
    for (const [path, script] of [["batched", renderBatchedFirewallScript(set, LATE)], ["per-rule", renderFirewallScript(set, LATE)]]) {
      const r = sandbox([
        "ufw default deny outgoing >/dev/null && ufw default reject incoming >/dev/null && ufw default allow routed >/dev/null",
        "=== first", "sh ./fw.sh", policies,
        "=== second", "sh ./fw.sh",
      ].join("\n"), { "fw.sh": script });
      expect({ path, code: r.code }).toEqual({ path, code: 0 });
      const s = sections(r.stdout);
      expect(s.first).toContain('DEFAULT_INPUT_POLICY="REJECT"\nDEFAULT_OUTPUT_POLICY="DROP"\nDEFAULT_FORWARD_POLICY="DROP"\n');
      expect(s.first).toContain("default policy: deny routed");
      expect(s.first).not.toMatch(/default policy: .*(incoming|outgoing)/);
      expect(s.second).toMatch(/converged \(0 change\(s\)\)/);
      // Once per run, on stderr (shown by Terraform), naming what the cluster needs out.
      expect(r.stderr.match(/warning: ufw's default outgoing policy is deny/g)).toHaveLength(2);
      expect(r.stderr).toContain("PeerFirewall leaves it as you set it and adds no outgoing rules");
    }
  });
});
