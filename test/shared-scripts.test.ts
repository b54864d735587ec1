/**
 * The node scripts are split into a per-node part (opening lines and parameter assignments) and a
 * program the stack emits once as a local: the configuration stays small at 200 nodes, and the
 * host still runs one whole script (remote-exec joins `inline` with newlines).
 */
import { Fn } from "cdktf";
import { K3sAgent, K3sServer } from "../lib";
import { InstallSettings, installScriptParts, renderInstallScript } from "../lib/render/install-script";
import { rolloutAfterParts, rolloutBeforeParts, RolloutSettings } from "../lib/render/rollout-script";
import { joinScript, ScriptParts, stagingScriptParts } from "../lib/render/shell";
import { newStack, synth } from "./util/synth";
import { shellcheck } from "./util/shellcheck";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
const install: InstallSettings = {
  role: "agent", nodeName: "node-1", version: "v1.33.4+k3s1", installScriptUrl: "https://get.k3s.io",
  skipDownload: false, installWireguardTools: true, readyTimeoutSeconds: 300,
};
const rollout: RolloutSettings = { nodeName: "node-1", maxUnavailable: 1, drainTimeoutSeconds: 120, slotTimeoutSeconds: 900, readyTimeoutSeconds: 300, inputs: "d1" };
/** Every install parameter changed at once. */
const otherInstall: Partial<InstallSettings> = {
  nodeName: "it's-$(reboot)", version: "v1.32.8+k3s1", installScriptUrl: "file:///opt/k3s/install.sh",
  installScriptSha256: "a".repeat(64), skipDownload: true, readyTimeoutSeconds: 60,
};

// Each script for two nodes that differ in every parameter the script has.
const pairs: Array<[string, ScriptParts, ScriptParts]> = [
  ["agent install", installScriptParts(install, LATE), installScriptParts({ ...install, ...otherInstall }, LATE)],
  ["server install", installScriptParts({ ...install, role: "server" }, LATE), installScriptParts({ ...install, ...otherInstall, role: "server" }, LATE)],
  ["agent install without wireguard-tools", installScriptParts({ ...install, installWireguardTools: false }, LATE), installScriptParts({ ...install, ...otherInstall, installWireguardTools: false }, LATE)],
  ["staging", stagingScriptParts(), stagingScriptParts()],
  ["rollout before", rolloutBeforeParts(rollout, LATE), rolloutBeforeParts({ nodeName: "x'y", maxUnavailable: 3, drainTimeoutSeconds: 5, slotTimeoutSeconds: 7, readyTimeoutSeconds: 9, inputs: "d2" }, LATE)],
  ["rollout after", rolloutAfterParts(rollout, LATE), rolloutAfterParts({ ...rollout, nodeName: "other", readyTimeoutSeconds: 11, inputs: "d2" }, LATE)],
];

describe.each(pairs)("the %s script, split", (_name, a, b) => {
  test("has one program whatever the parameters", () => {
    expect(a.program).toEqual(b.program);
  });

  test("gives each node only its opening lines and plain assignments of quoted or numeric values", () => {
    for (const p of [a, b]) {
      const lines = p.node.split("\n");
      expect(lines.slice(0, 3)).toEqual(["#!/bin/sh", expect.stringMatching(/^# cdktf-k3s-kilo: /), "set -eu"]);
      for (const l of lines.slice(3)) expect(l).toMatch(/^[A-Z_0-9]+=('([^']|'\\'')*'|\d+|true|false)$/);
    }
  });

  test("assigns every upper-case variable the program reads (shellcheck does not flag unassigned ones)", () => {
    // Set by sudo or the system, not by us.
    const environment = new Set(["SUDO_UID", "HOME", "PATH"]);
    const used = new Set([...a.program.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]));
    for (const p of [a, b]) {
      const assigned = new Set([...`${p.node}\n${p.program}`.matchAll(/^\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]));
      expect([...used].filter((v) => !assigned.has(v) && !environment.has(v))).toEqual([]);
    }
  });

  test("runs as one shellcheck-clean script that becomes root before the program", () => {
    // (b's hostile values would only draw shellcheck's "won't expand in single quotes" note.)
    expect(shellcheck(joinScript(a))).toBe("");
    for (const p of [a, b]) {
      const whole = joinScript(p);
      expect(whole.indexOf("exec sudo -n /bin/sh \"$0\" \"$@\"")).toBeGreaterThan(p.node.length);
    }
  });
});

test("a token parameter stays in the node's part, quoted by Terraform", () => {
  const parts = installScriptParts({ ...install, nodeName: Fn.lower("${var.name}") as string }, LATE);
  expect(parts.node).toMatch(/NODE_NAME='\$\{TfToken\[/);
  expect(parts.program).not.toMatch(/TfToken/);
  expect(renderInstallScript({ ...install, nodeName: "n" }, LATE)).toEqual(joinScript(installScriptParts({ ...install, nodeName: "n" }, LATE)));
});

test("a stack emits each program once and every node step refers to it", () => {
  const { stack } = newStack();
  const server = new K3sServer(stack, "server", { host: { address: "203.0.113.10", ssh } });
  for (let i = 0; i < 4; i++) new K3sAgent(stack, `agent-${i}`, { server, host: { address: `203.0.113.${11 + i}`, ssh } });
  const out = synth(stack) as any;
  const programs = Object.keys(out.locals).filter((k) => k.startsWith("k3s-script-"));
  // staging, server install, agent install, rollout before, rollout after
  expect(programs).toHaveLength(5);
  const used = new Map<string, number>();
  for (const [name, r] of Object.entries(out.resource.terraform_data) as Array<[string, any]>) {
    if (!name.includes("_install_")) continue;
    for (const p of r.provisioner) {
      const body = p["remote-exec"];
      if (!body) continue;
      expect(body.inline).toHaveLength(2);
      expect(body.inline[0]).toMatch(/^#!\/bin\/sh\n/);
      const ref = /^\$\{local\.(k3s-script-[0-9a-f]+)\}$/.exec(body.inline[1]);
      expect(ref).not.toBeNull();
      used.set(ref![1], (used.get(ref![1]) ?? 0) + 1);
    }
  }
  expect([...used.keys()].sort()).toEqual(programs.sort());
  // Four agents share the agent programs; the staging program is on all five nodes.
  expect([...used.values()].sort()).toEqual([1, 4, 4, 4, 5]);
});

test("the servers of an HA cluster share one install program", () => {
  const { stack } = newStack();
  const first = new K3sServer(stack, "server-0", { host: { address: "203.0.113.10", ssh } });
  for (let i = 1; i < 3; i++) new K3sServer(stack, `server-${i}`, { join: first, host: { address: `203.0.113.${10 + i}`, ssh } });
  const out = synth(stack) as any;
  const installRefs = new Set(Object.entries(out.resource.terraform_data as Record<string, any>)
    .filter(([name]) => /^server-\d_install_/.test(name))
    .map(([, r]) => r.provisioner.filter((p: any) => p["remote-exec"]).slice(-1)[0]["remote-exec"].inline[1]));
  expect(installRefs.size).toBe(1);
});
