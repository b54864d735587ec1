/**
 * The rolling-restart scripts, run in a real shell: several agents' drain steps started at once
 * never hold more than maxUnavailable slots, each node is cordoned and drained before its restart
 * and uncordoned after, and a first install touches nothing. The scripts run with flock, date
 * and sh from this machine; only `k3s kubectl` is a recording stand-in (a shell script keeping
 * nodes and labels in files), because there is no cluster here. Also: the install script's
 * refusal to skip a minor release.
 */
import { execFileSync, spawnSync } from "child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync, mkdirSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { renderRolloutAfterScript, renderRolloutBeforeScript, RolloutSettings } from "../lib/render/rollout-script";
import { renderInstallScript, versionStepCheck } from "../lib/render/install-script";
import { STATE_DIR } from "../lib/render/shell";
import { shellcheck } from "./util/shellcheck";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const settings = (nodeName: string, maxUnavailable: number, inputs = "d1"): RolloutSettings => ({
  nodeName, maxUnavailable, drainTimeoutSeconds: 30, slotTimeoutSeconds: 120, readyTimeoutSeconds: 30, inputs,
});

/**
 * A recording `k3s kubectl`: nodes are directories, a label (its value the file's content) or a
 * cordon (spec.unschedulable) is a file, every call a log line.
 */
const FAKE_K3S = `#!/bin/sh
set -eu
S="$FAKE_STATE"
ev() { printf '%s %s\\n' "$(date +%s%N)" "$*" >> "$S/events.log"; }
[ "$1" = kubectl ] || exit 2
shift
case "$1 $2" in
  "get node")
    [ -d "$S/nodes/$3" ] || { echo "not found" >&2; exit 1; }
    case "$*" in
      *unschedulable*) [ -z "\${FAKE_FAIL_GET:-}" ] || exit 1; if [ -e "$S/nodes/$3/unschedulable" ]; then printf true; fi ;;
      *jsonpath*) printf True ;;
    esac ;;
  "get nodes")
    [ -z "\${FAKE_FAIL_LIST:-}" ] || { echo "the server is unreachable" >&2; exit 1; }
    # -l LABEL or -l LABEL=VALUE
    case "$4" in *=*) want="\${4#*=}" ;; *) want="" ;; esac
    for n in "$S"/nodes/*; do
      [ -e "$n/rolling" ] || continue
      [ -z "$want" ] || [ "$(cat "$n/rolling")" = "$want" ] || continue
      printf 'node/%s\\n' "$(basename "$n")"
    done; true ;;
  "label node")
    case "$4" in
      *-) rm -f "$S/nodes/$3/rolling"; ev "release $3" ;;
      *) printf '%s' "\${4#*=}" > "$S/nodes/$3/rolling"; ev "take $3" ;;
    esac ;;
  "cordon "*) touch "$S/nodes/$2/unschedulable"; ev "cordon $2" ;;
  "uncordon "*) rm -f "$S/nodes/$2/unschedulable"; ev "uncordon $2" ;;
  "drain "*) ev "drain $2"; sleep 0.3 ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rollout-"));
  writeFileSync(join(dir, "k3s"), FAKE_K3S);
  chmodSync(join(dir, "k3s"), 0o755);
  mkdirSync(join(dir, "state"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The script with its two fixed paths pointed into the test's directory. */
function localize(script: string): string {
  return script.split("/usr/local/bin/k3s").join(join(dir, "k3s")).split(STATE_DIR).join(join(dir, "state"));
}

function addNodes(names: string[]) {
  for (const n of names) mkdirSync(join(dir, "nodes", n), { recursive: true });
}

function events(): string[][] {
  let text = "";
  try { text = readFileSync(join(dir, "events.log"), "utf8"); } catch { return []; }
  return text.trim().split("\n").filter(Boolean).map((l) => l.split(" "));
}

describe("rollout scripts", () => {
  test("pass shellcheck", () => {
    expect(shellcheck(renderRolloutBeforeScript(settings("agent-1", 2), LATE))).toBe("");
    expect(shellcheck(renderRolloutAfterScript(settings("agent-1", 2), LATE))).toBe("");
  });

  test.each([1, 2])("six agents started together: at most %i restart at once, each cordoned, drained, restarted, uncordoned in order", (max) => {
    const names = ["a0", "a1", "a2", "a3", "a4", "a5"];
    addNodes(names);
    for (const n of names) {
      writeFileSync(join(dir, `before-${n}.sh`), localize(renderRolloutBeforeScript(settings(n, max), LATE)));
      writeFileSync(join(dir, `after-${n}.sh`), localize(renderRolloutAfterScript(settings(n, max), LATE)));
    }
    // What Terraform does with parallelism >= 6: every agent's drain step, its install (here a
    // recorded restart) and its uncordon step, all started at the same moment.
    const driver = names.map((n) =>
      `( sh "${dir}/before-${n}.sh" && printf '%s restart ${n}\\n' "$(date +%s%N)" >> "${dir}/events.log" && sleep 0.5 && sh "${dir}/after-${n}.sh" ) >"${dir}/${n}.out" 2>&1 &`).join("\n") + "\nwait\n";
    const r = spawnSync("sh", ["-c", driver], { env: { ...process.env, FAKE_STATE: dir }, encoding: "utf8", timeout: 120_000 });
    expect(r.status).toBe(0);
    const ev = events();
    let holding = 0;
    let most = 0;
    for (const [, what] of ev) {
      if (what === "take") holding++;
      if (what === "release") holding--;
      most = Math.max(most, holding);
    }
    expect(most).toBe(max);
    for (const n of names) {
      const mine = ev.filter(([, , who]) => who === n).map(([, what]) => what);
      expect(mine).toEqual(["take", "cordon", "drain", "restart", "uncordon", "release"]);
    }
    expect(holding).toBe(0);
  });

  test("a first install (no Node yet) is not drained and takes no slot", () => {
    writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(settings("new-node", 1), LATE)));
    writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("new-node", 1), LATE)));
    const env = { ...process.env, FAKE_STATE: dir };
    const out = execFileSync("sh", [join(dir, "before.sh")], { env, encoding: "utf8" });
    expect(out).toContain("a first install, nothing to drain");
    execFileSync("sh", [join(dir, "after.sh")], { env, encoding: "utf8" });
    expect(events()).toEqual([]);
  });

  test("a step whose restart inputs are those of the last successful step drains nothing; new inputs drain again", () => {
    addNodes(["a0"]);
    const env = { ...process.env, FAKE_STATE: dir };
    const step = (inputs: string) => {
      writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(settings("a0", 1, inputs), LATE)));
      writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("a0", 1, inputs), LATE)));
      rmSync(join(dir, "events.log"), { force: true });
      const out = execFileSync("sh", [join(dir, "before.sh")], { env, encoding: "utf8" });
      execFileSync("sh", [join(dir, "after.sh")], { env, encoding: "utf8" });
      return { out, what: events().map(([, what]) => what) };
    };
    // No record yet (the node predates it): drained once, then the inputs are recorded.
    expect(step("d1").what).toEqual(["take", "cordon", "drain", "uncordon", "release"]);
    const records = readdirSync(join(dir, "state", "rollout"));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(statSync(join(dir, "state", "rollout", records[0])).mode & 0o777).toBe(0o600);
    // Same inputs (only a script's wording changed): nothing on the cluster.
    const same = step("d1");
    expect(same.what).toEqual([]);
    expect(same.out).toContain("no restart, so no drain");
    // A new version or config: drained again, and the new inputs recorded.
    expect(step("d2").what).toEqual(["take", "cordon", "drain", "uncordon", "release"]);
    expect(step("d2").what).toEqual([]);
    // A name that is not a plain file name stays inside the record directory.
    addNodes(["x"]);
    writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("../../x", 1), LATE)));
    execFileSync("sh", [join(dir, "after.sh")], { env, encoding: "utf8" });
    expect(readdirSync(join(dir, "state", "rollout"))).toHaveLength(2);
  });

  test("no inputs (a file:// installer, read on the host each time): never skipped", () => {
    addNodes(["a0"]);
    const env = { ...process.env, FAKE_STATE: dir };
    writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(settings("a0", 1, ""), LATE)));
    writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("a0", 1, ""), LATE)));
    for (let i = 0; i < 2; i++) {
      rmSync(join(dir, "events.log"), { force: true });
      execFileSync("sh", [join(dir, "before.sh")], { env, encoding: "utf8" });
      execFileSync("sh", [join(dir, "after.sh")], { env, encoding: "utf8" });
      expect(events().map(([, what]) => what)).toEqual(["take", "cordon", "drain", "uncordon", "release"]);
    }
  });

  test("the after step fails when it cannot tell whether the node holds a slot, and records nothing", () => {
    addNodes(["a0"]);
    writeFileSync(join(dir, "nodes", "a0", "rolling"), "");
    writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("a0", 1), LATE)));
    const r = spawnSync("sh", [join(dir, "after.sh")], { env: { ...process.env, FAKE_STATE: dir, FAKE_FAIL_LIST: "1" }, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot list the nodes labelled cdktf-k3s-kilo\/rolling on this server; a0 may still be cordoned/);
    expect(() => readdirSync(join(dir, "state", "rollout"))).toThrow();
    expect(events()).toEqual([]);
  });

  test("a failed restart is not recorded: the next step with the same inputs carries on with its slot", () => {
    addNodes(["a0"]);
    const env = { ...process.env, FAKE_STATE: dir };
    writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(settings("a0", 1, "d2"), LATE)));
    writeFileSync(join(dir, "after.sh"), localize(renderRolloutAfterScript(settings("a0", 1, "d2"), LATE)));
    execFileSync("sh", [join(dir, "before.sh")], { env, encoding: "utf8" });
    // The install failed here: the after step never ran, so nothing was recorded and the slot is held.
    expect(() => readdirSync(join(dir, "state", "rollout"))).toThrow();
    rmSync(join(dir, "events.log"), { force: true });
    execFileSync("sh", [join(dir, "before.sh")], { env, encoding: "utf8" });
    execFileSync("sh", [join(dir, "after.sh")], { env, encoding: "utf8" });
    expect(events().map(([, what]) => what)).toEqual(["cordon", "drain", "uncordon", "release"]);
  });

  test("a node the operator had cordoned is drained and restarted, then left cordoned; a re-run after a failed restart keeps each node's own state", () => {
    addNodes(["a0", "a1"]);
    writeFileSync(join(dir, "nodes", "a0", "unschedulable"), "");
    const env = { ...process.env, FAKE_STATE: dir };
    const write = (n: string) => {
      writeFileSync(join(dir, `before-${n}.sh`), localize(renderRolloutBeforeScript(settings(n, 2), LATE)));
      writeFileSync(join(dir, `after-${n}.sh`), localize(renderRolloutAfterScript(settings(n, 2), LATE)));
    };
    write("a0"); write("a1");
    execFileSync("sh", [join(dir, "before-a0.sh")], { env, encoding: "utf8" });
    const out = execFileSync("sh", [join(dir, "after-a0.sh")], { env, encoding: "utf8" });
    expect(events().map(([, what]) => what)).toEqual(["take", "cordon", "drain", "release"]);
    expect(out).toMatch(/a0 is Ready; it was cordoned before the rollout; left cordoned/);
    expect(readdirSync(join(dir, "nodes", "a0"))).toEqual(["unschedulable"]);

    // New inputs, and the restart fails once (no after step): the re-run still leaves a0 cordoned.
    writeFileSync(join(dir, "before-a0.sh"), localize(renderRolloutBeforeScript(settings("a0", 2, "d2"), LATE)));
    writeFileSync(join(dir, "after-a0.sh"), localize(renderRolloutAfterScript(settings("a0", 2, "d2"), LATE)));
    rmSync(join(dir, "events.log"), { force: true });
    execFileSync("sh", [join(dir, "before-a0.sh")], { env, encoding: "utf8" });
    execFileSync("sh", [join(dir, "before-a0.sh")], { env, encoding: "utf8" });
    execFileSync("sh", [join(dir, "after-a0.sh")], { env, encoding: "utf8" });
    expect(events().map(([, what]) => what)).toEqual(["take", "cordon", "drain", "cordon", "drain", "release"]);
    expect(readdirSync(join(dir, "nodes", "a0"))).toEqual(["unschedulable"]);

    // a1 was schedulable. Its restart fails (no after step), so the re-run finds it cordoned — by
    // the rollout, not the operator: once it is Ready it is uncordoned as usual.
    rmSync(join(dir, "events.log"), { force: true });
    execFileSync("sh", [join(dir, "before-a1.sh")], { env, encoding: "utf8" });
    execFileSync("sh", [join(dir, "before-a1.sh")], { env, encoding: "utf8" });
    execFileSync("sh", [join(dir, "after-a1.sh")], { env, encoding: "utf8" });
    expect(events().map(([, what]) => what)).toEqual(["take", "cordon", "drain", "cordon", "drain", "uncordon", "release"]);
    expect(readdirSync(join(dir, "nodes", "a1"))).toEqual([]);
  });

  test("the before step stops, cordoning nothing, when it cannot tell whether the node is cordoned already", () => {
    addNodes(["a0"]);
    writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(settings("a0", 1), LATE)));
    const r = spawnSync("sh", [join(dir, "before.sh")], { env: { ...process.env, FAKE_STATE: dir, FAKE_FAIL_GET: "1" }, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot read whether a0 is cordoned/);
    expect(events()).toEqual([]);
  });

  test("a node that failed its restart keeps its slot: the next one waits, then gives up within its bound", () => {
    addNodes(["stuck", "next"]);
    writeFileSync(join(dir, "nodes", "stuck", "rolling"), "");
    const s = { ...settings("next", 1), slotTimeoutSeconds: 4 };
    writeFileSync(join(dir, "before.sh"), localize(renderRolloutBeforeScript(s, LATE)));
    const started = Date.now();
    const r = spawnSync("sh", [join(dir, "before.sh")], { env: { ...process.env, FAKE_STATE: dir }, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no rollout slot for next within 4s: 1 node\(s\) labelled cdktf-k3s-kilo\/rolling are still restarting: stuck .*raise rollout\.slotTimeoutSeconds/);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(events().filter(([, what]) => what === "cordon")).toEqual([]);
  });
});

describe("one minor release at a time", () => {
  const check = (running: string, target: string) => {
    writeFileSync(join(dir, "k3s"), `#!/bin/sh\necho "k3s version ${running} (abcdef)"\necho "go version go1.22"\n`);
    const script = [
      "set -eu",
      "log() { echo \"$*\"; }",
      "fail() { echo \"error: $*\" >&2; exit 1; }",
      `K3S_VERSION='${target}'`,
      localize(versionStepCheck().join("\n")),
      "echo checked",
    ].join("\n");
    return spawnSync("sh", ["-c", script], { encoding: "utf8" });
  };
  test.each([
    ["v1.32.5+k3s1", "v1.33.4+k3s1", true],
    ["v1.33.1+k3s1", "v1.33.4+k3s1", true],
    ["v1.33.4+k3s1", "v1.32.8+k3s1", true],
    ["v1.31.2+k3s1", "v1.33.4+k3s1", false],
    ["v1.30.0+k3s1", "v1.34.1+k3s1", false],
  ])("from %s to %s: allowed %s", (running, target, allowed) => {
    const r = check(running, target);
    expect(r.status === 0).toBe(allowed);
    if (!allowed) expect(r.stderr).toMatch(new RegExp(`this host runs K3s ${running.replace(/[+.]/g, "\\$&")}; ${target.replace(/[+.]/g, "\\$&")} skips a minor release.*nothing was changed`));
  });

  test("part of the install script, before anything is installed", () => {
    const script = renderInstallScript({ role: "agent", nodeName: "n", version: "v1.33.4+k3s1", installScriptUrl: "https://get.k3s.io", skipDownload: false, installWireguardTools: true, readyTimeoutSeconds: 300 }, LATE);
    expect(script.indexOf("skips a minor release")).toBeGreaterThan(0);
    expect(script.indexOf("skips a minor release")).toBeLessThan(script.indexOf("wireguard-tools"));
    expect(shellcheck(script)).toBe("");
  });

  test("a config-only change restarts K3s: the installer is told to restart even when its binary is unchanged", () => {
    const script = renderInstallScript({ role: "server", nodeName: "n", version: "v1.33.4+k3s1", installScriptUrl: "https://get.k3s.io", skipDownload: false, installWireguardTools: true, readyTimeoutSeconds: 300 }, LATE);
    const force = script.indexOf("export INSTALL_K3S_FORCE_RESTART=true");
    expect(force).toBeGreaterThan(0);
    expect(force).toBeLessThan(script.indexOf("INSTALL_K3S_EXEC=\"$ROLE\""));
    // Only on the path that (re)installs: an unchanged fingerprint restarts nothing.
    expect(force).toBeGreaterThan(script.indexOf("nothing to change"));
  });
});
