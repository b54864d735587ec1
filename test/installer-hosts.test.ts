/**
 * The install step's handling of K3s's install script, on a real host: a pinned sha256 is checked
 * before the script runs (a mismatch runs nothing), and the host's fingerprint covers the script's
 * content, so a changed script at the same URL re-runs the install.
 *
 * K3s's install script cannot be downloaded here: the STAND-IN installer (test/harness/stand-in-k3s,
 * not K3s) is served with a file:// URL, as install.scriptUrl allows; it records every run.
 */
import { createHash } from "crypto";
import { appendFileSync, readFileSync } from "fs";
import { spawnSync } from "child_process";
import { join } from "path";
import { K3S_DEFAULT_VERSION } from "../lib";
import { renderInstallScript, InstallSettings, STAGED_CONFIG } from "../lib/render/install-script";
import { renderK3sConfig, serverConfig } from "../lib/render/k3s-config";
import { renderStagingScript, STAGING_DIR, STATE_DIR } from "../lib/render/shell";
import { createLab, Lab, LabHost } from "./harness/lab";
import { serveStandIn, STAND_IN_INSTALLER_URL, standInCounts } from "./harness/stand-in";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

jest.setTimeout(300000);

const canRun = process.getuid?.() === 0 && ["sshd", "unshare", "ip", "openssl", "socat"]
  .every((b) => spawnSync("sh", ["-c", `command -v ${b}`]).status === 0);
const describeReal = canRun ? describe : describe.skip;

let lab: Lab;
let server: LabHost;

const settings = (sha?: string): InstallSettings => ({
  role: "server",
  nodeName: "server",
  version: K3S_DEFAULT_VERSION,
  installScriptUrl: STAND_IN_INSTALLER_URL,
  installScriptSha256: sha,
  skipDownload: false,
  installWireguardTools: false,
  readyTimeoutSeconds: 30,
});

/** The install step as Terraform runs it: the staging script, then the install script. */
async function install(sha?: string) {
  await server.run("sh -s", { input: renderStagingScript() });
  return server.exec("sh -s", { input: renderInstallScript(settings(sha), LATE), timeoutMs: 120000 });
}
/** The host's copy of the stand-in installer (what the file:// URL points at). */
const hostCopy = () => join(server.dir, "share", "stand-in", "install.sh");
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describeReal("the install script: pinned sha256 and content fingerprint (stand-in installer)", () => {
  beforeAll(async () => {
    lab = await createLab({ hosts: [{ name: "server", address: "198.51.100.40" }] });
    server = lab.host("server");
    serveStandIn(lab);
    const config = renderK3sConfig(serverConfig({
      nodeName: "server", address: server.address, publicAddressOnInterface: true, labels: {}, taints: [], extraConfig: {},
      token: "t".repeat(48), agentToken: "a".repeat(48), tlsSans: [server.address], clusterCidr: "10.42.0.0/16",
      serviceCidr: "10.43.0.0/16", secretsEncryption: true,
    }, LATE), LATE);
    await server.run("install -d -m 0755 /etc/rancher/k3s && cat > /etc/rancher/k3s/config.yaml && chmod 0600 /etc/rancher/k3s/config.yaml", { input: config });
  });
  afterAll(async () => { await lab?.cleanup(); });

  test("a failed install leaves no uploaded config with the token behind", async () => {
    // The upload as Terraform's file provisioner does it, then an install that fails before it
    // moves the config into place (a K3s binary two minor releases behind refuses the upgrade).
    const token = `staged-${"5".repeat(40)}`;
    await server.run("sh -s", { input: renderStagingScript() });
    await server.run(`cat > ${STAGED_CONFIG}`, { input: `token: ${token}\n` });
    await server.run("printf '#!/bin/sh\\necho \"k3s version v1.20.0+k3s1 (0000000)\"\\n' > /usr/local/bin/k3s && chmod 0755 /usr/local/bin/k3s");
    try {
      const r = await server.exec("sh -s", { input: renderInstallScript(settings(), LATE), timeoutMs: 120000 });
      expect(r.stdout + r.stderr).toMatch(/skips a minor release/);
      expect(r.code).not.toBe(0);
    } finally {
      await server.run("rm -f /usr/local/bin/k3s");
    }
    expect(await server.run(`grep -rl ${token} ${STATE_DIR} || true`)).toBe("");
    expect(await server.run(`ls -A ${STAGING_DIR}`)).toBe("");
  });

  test("the install script's URL reaches curl on stdin, never on its command line; one with credentials is refused unprinted", async () => {
    // A stand-in curl ahead of the real one on PATH: records its argv and stdin, then fails as on a 404.
    await server.run("cat > /usr/local/bin/curl && chmod 0755 /usr/local/bin/curl", { input: [
      "#!/bin/sh",
      "printf '%s\\n' \"$@\" > /tmp/curl.argv",
      "cat > /tmp/curl.stdin",
      "exit 22",
      "",
    ].join("\n") });
    try {
      const url = "https://mirror.example.com/k3s/install.sh?X-Amz-Signature=sig0123456789";
      const r = await server.exec("sh -s", { input: renderInstallScript({ ...settings(), installScriptUrl: url }, LATE), timeoutMs: 120000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/could not download the K3s install script from https:\/\/mirror\.example\.com\/k3s\/install\.sh \(query not shown\)/);
      expect(r.stdout + r.stderr).not.toContain("sig0123456789");
      const argv = await server.run("cat /tmp/curl.argv");
      expect(argv).toContain("--proto\n=https\n");
      expect(argv).not.toContain("mirror.example.com");
      expect(await server.run("cat /tmp/curl.stdin")).toBe(`url = "${url}"\n`);

      await server.run("rm -f /tmp/curl.argv /tmp/curl.stdin");
      const secret = "pw-" + "7".repeat(30);
      for (const withCreds of [`https://deploy:${secret}@mirror.example.com/install.sh`, `https://${secret}@mirror.example.com`]) {
        const refused = await server.exec("sh -s", { input: renderInstallScript({ ...settings(), installScriptUrl: withCreds }, LATE), timeoutMs: 120000 });
        expect(refused.code).not.toBe(0);
        expect(refused.stderr).toMatch(/install\.scriptUrl carries credentials \(user:password or a token before the @ of mirror\.example\.com\): they would reach this host's files and curl's error messages; serve the script from a URL that needs no credentials, or copy it to the hosts and use a file:\/\/ URL; nothing was changed/);
        expect(refused.stdout + refused.stderr).not.toContain(secret);
        expect(await server.exec("test -e /tmp/curl.argv")).toMatchObject({ code: 1 });
      }
    } finally {
      await server.run("rm -f /usr/local/bin/curl /tmp/curl.argv /tmp/curl.stdin");
    }
  });

  test("a wrong pinned sha256 stops the install before the script runs", async () => {
    const r = await install("0".repeat(64));
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`has sha256 ${sha256(hostCopy())}, not the pinned 0{64}; nothing was run`));
    expect((await standInCounts(server)).installs).toBe(0);
  });

  test("the right pin installs once; a re-run changes nothing", async () => {
    const pin = sha256(hostCopy());
    const first = await install(pin);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`install script sha256 ${pin}`);
    expect((await standInCounts(server)).installs).toBe(1);
    const again = await install(pin);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already runs with this configuration; nothing to change/);
    expect((await standInCounts(server)).installs).toBe(1);
  });

  test("a changed script at the same URL: refused under the old pin, re-installed without one", async () => {
    const oldPin = sha256(hostCopy());
    appendFileSync(hostCopy(), "# a different release of the install script\n");
    const refused = await install(oldPin);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain(`not the pinned ${oldPin}`);
    expect((await standInCounts(server)).installs).toBe(1);

    // Same URL, same version, same config: only the script's content differs, and that re-runs it.
    const unpinned = await install(undefined);
    expect(unpinned.code).toBe(0);
    expect((await standInCounts(server)).installs).toBe(2);
    const again = await install(undefined);
    expect(again.code).toBe(0);
    expect((await standInCounts(server)).installs).toBe(2);
  });
});
