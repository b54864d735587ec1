/**
 * Every script the K3s constructs render: shellcheck-clean POSIX sh, errexit first, every wait
 * bounded, user values quoted. Their behaviour on real hosts is in the e2e tests.
 */
import { renderInstallScript, InstallSettings } from "../lib/render/install-script";
import { Fn } from "cdktf";
import { renderStagingScript, shq, shqLiteral } from "../lib/render/shell";
import { renderDrainScript, renderUninstallScript } from "../lib/render/uninstall-script";
import { shellcheck } from "./util/shellcheck";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const base: InstallSettings = {
  role: "server", nodeName: "node-1", version: "v1.33.4+k3s1", installScriptUrl: "https://get.k3s.io",
  skipDownload: false, installWireguardTools: true, readyTimeoutSeconds: 300,
};

const scripts: Array<[string, string]> = [
  ["server install", renderInstallScript(base, LATE)],
  ["agent install", renderInstallScript({ ...base, role: "agent" }, LATE)],
  ["air-gapped install without WireGuard tools", renderInstallScript({ ...base, skipDownload: true, installWireguardTools: false, installScriptUrl: "file:///opt/k3s/install.sh" }, LATE)],
  ["staging", renderStagingScript()],
  ["drain", renderDrainScript("node-1", 120, LATE)],
  ["server uninstall", renderUninstallScript("server")],
  ["agent uninstall", renderUninstallScript("agent")],
];

describe.each(scripts)("the %s script", (_name, script) => {
  test("passes shellcheck", () => {
    expect(shellcheck(script)).toBe("");
  });

  test("starts with sh and errexit, and becomes root only through sudo -n", () => {
    expect(script.split("\n").slice(0, 3)).toEqual(["#!/bin/sh", expect.stringMatching(/^# cdktf-k3s-kilo: /), "set -eu"]);
    expect(script).toContain("exec sudo -n /bin/sh \"$0\" \"$@\"");
    const sudoCalls = script.match(/(?:^|exec |! |&& |\|\| )sudo \S+/gm) ?? [];
    expect(sudoCalls.length).toBeGreaterThan(0);
    for (const call of sudoCalls) expect(call).toMatch(/sudo -n$/);
  });

  test("bounds every wait and every network or cluster call", () => {
    for (const line of script.split("\n")) {
      if (/\b(curl|apt-get (update|install)|kubectl (drain|delete|get)|k3s-uninstall|k3s-agent-uninstall|sh "\$installer")\b/.test(line) && !/command -v|log |fail "|^\s*#|\[ -x|running /.test(line)) {
        expect(line).toMatch(/timeout \d+|--max-time \d+|wait_for/);
      }
    }
    expect(script).not.toMatch(/while true|until .*; do(?![\s\S]*wait_limit)/);
  });
});

describe("quoting", () => {
  test("a hostile node name stays one literal word", () => {
    expect(renderDrainScript("it's-$(reboot)", 5, LATE)).toContain("NODE='it'\\''s-$(reboot)'");
  });

  test("shq escapes single quotes for literal values", () => {
    expect(shq("a'b", LATE)).toBe("'a'\\''b'");
    expect(shq("$HOME", LATE)).toBe("'$HOME'");
  });

  test("shq leaves a Terraform value to Terraform's replace(); shqLiteral refuses one", () => {
    const token = Fn.lower("${var.name}");
    expect(shq(token, LATE)).not.toBe(`'${token}'`);
    expect(() => shqLiteral(token)).toThrow(/shqLiteral was given a Terraform value/);
    expect(shqLiteral("a'b")).toBe("'a'\\''b'");
  });
});
