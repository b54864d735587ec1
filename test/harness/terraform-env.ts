/**
 * The environment the real `terraform` binary runs in during tests: the providers our stacks require,
 * installed into a filesystem mirror, and a CLI configuration that installs providers only from that
 * mirror, so `terraform init` works offline and writes a lock file.
 *
 * Which providers: the real ones that tools/build.sh builds from their Go modules (hashicorp/random,
 * hashicorp/local, hashicorp/kubernetes; `hashicorp/null` is no longer used by the library), and
 * schema-only stand-ins (test/standin-providers/) for examples/multi-provider's hashicorp/google and
 * digitalocean/digitalocean, whose releases the Go module proxy does not serve.
 *
 * Built once per test process in a temp dir, removed when the process exits. The machine's own
 * TF_CLI_CONFIG_FILE (/root/.terraformrc, which does not exist) is overridden.
 *
 * Mirror layout (Terraform's "unpacked" filesystem_mirror layout, docs/cli/config/config-file):
 *   <dir>/mirror/registry.terraform.io/<namespace>/<type>/<version>/linux_amd64/terraform-provider-<type>_v<version>
 * A real provider is a hard link to (or a copy of) the cached binary, so the lock file holds the real
 * provider's hash. A stand-in is a two-line shell script that execs Node on its JavaScript; its text
 * is the same on every run of the same checkout, so a lock file written by one run matches the next.
 *
 * One TLS key and certificate (SAN DNS:localhost, as go-plugin's AutoMTLS requires) are generated
 * here per test run with the openssl CLI and handed to every stand-in process through
 * STANDIN_PROVIDER_TLS_DIR: generating a key in each provider process Terraform starts per command
 * would cost ~200 ms each. Never committed; removed with the temp dir. Likewise the stand-ins'
 * .proto files are converted to JSON once (STANDIN_PROVIDER_PROTO_JSON).
 */
import { execFileSync } from "child_process";
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { dirname, join, resolve } from "path";

export const STANDIN_DIR = resolve(__dirname, "..", "standin-providers");
const REGISTRIES = ["registry.terraform.io", "registry.opentofu.org"];
/** tools/build.sh of this checkout: two levels up from here, or more when compiled into bench/.build/. */
function buildScript(): string {
  for (let d = resolve(__dirname, "..", ".."); d !== dirname(d); d = dirname(d)) {
    if (existsSync(join(d, "tools", "build.sh")) && existsSync(join(d, "package.json"))) return join(d, "tools", "build.sh");
  }
  throw new Error(`tools/build.sh not found above ${__dirname}`);
}

export interface MirroredProvider {
  readonly namespace: string;
  readonly type: string;
  readonly version: string;
  /** "real": built from its Go module by tools/build.sh; "stand-in": schema only (test/standin-providers/). */
  readonly kind: "real" | "stand-in";
}

export interface StandinProvider extends MirroredProvider {
  /** Script under test/standin-providers/. */
  readonly main: string;
}

export interface RealProvider extends MirroredProvider {
  /** The binary in tools/build.sh's cache. */
  readonly binary: string;
}

export interface TerraformEnv {
  /** The temp dir holding everything below (removed at process exit). */
  readonly dir: string;
  /** The filesystem mirror's root. */
  readonly mirrorDir: string;
  /** The CLI configuration file (TF_CLI_CONFIG_FILE). */
  readonly cliConfigFile: string;
  /** Every provider in the mirror, real and stand-in, with its version. */
  readonly providers: readonly MirroredProvider[];
  /**
   * Environment for `terraform`: process.env plus TF_CLI_CONFIG_FILE, CHECKPOINT_DISABLE=1,
   * TF_IN_AUTOMATION=1, STANDIN_PROVIDER_TLS_DIR and STANDIN_PROVIDER_PROTO_JSON.
   */
  readonly env: Record<string, string>;
}

/** The schema-only stand-ins and their versions (test/standin-providers/providers.json). */
export function standinProviders(): StandinProvider[] {
  return JSON.parse(readFileSync(join(STANDIN_DIR, "providers.json"), "utf8")).providers
    .map((p: StandinProvider) => ({ ...p, kind: "stand-in" }));
}

let built: Array<{ name: string; release: string; binary: string }> | undefined;

/**
 * The programs tools/build.sh builds from their Go modules (it builds any that are missing from its
 * cache; `npm test` runs it first, so here it only lists them).
 */
export function builtTools(): Array<{ name: string; release: string; binary: string }> {
  if (built) return built;
  const out = execFileSync("bash", [buildScript()], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 1_800_000 });
  return built = out.trim().split("\n").map((line) => {
    const [name, release, binary] = line.split("\t");
    return { name, release, binary };
  });
}

/** The real providers: each a HashiCorp provider named terraform-provider-<type> in builtTools(). */
export function realProviders(): RealProvider[] {
  return builtTools().filter((t) => t.name.startsWith("terraform-provider-")).map((t) => ({
    namespace: "hashicorp", type: t.name.slice("terraform-provider-".length), version: t.release, kind: "real" as const, binary: t.binary,
  }));
}

/** OpenTofu's `tofu`, built by tools/build.sh. */
export function tofuBinary(): { release: string; binary: string } {
  const t = builtTools().find((x) => x.name === "tofu");
  if (!t) throw new Error("tools/build.sh built no tofu");
  return t;
}

/**
 * For a test stack that configures a provider itself, without the constructs (which widen local to
 * `~> 2.6`): require the version the mirror holds, where the prebuilt bindings pin another (local
 * 2.6.1, which the Go module proxy does not serve; tools/README.md).
 */
export function requireMirroredVersion(stack: { addOverride(path: string, value: unknown): void }, type: string): void {
  const p = realProviders().find((x) => x.type === type);
  if (!p) throw new Error(`no real provider ${type} in the mirror`);
  stack.addOverride(`terraform.required_providers.${type}.version`, p.version);
}

/** Every provider the mirror holds. */
export function mirroredProviders(): MirroredProvider[] {
  return [...realProviders(), ...standinProviders()];
}

let cached: TerraformEnv | undefined;

/** The test process's Terraform environment, built on first use. */
export function terraformEnv(): TerraformEnv {
  if (!cached) cached = build();
  return cached;
}

function build(): TerraformEnv {
  const dir = mkdtempSync(join(tmpdir(), "tf-env-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

  const mirrorDir = join(dir, "mirror");
  // Each provider under both registries' host names: `hashicorp/local` means registry.terraform.io
  // to Terraform and registry.opentofu.org to OpenTofu.
  const targets = (p: MirroredProvider) => REGISTRIES.map((host) => {
    const d = join(mirrorDir, host, p.namespace, p.type, p.version, "linux_amd64");
    mkdirSync(d, { recursive: true });
    return join(d, `terraform-provider-${p.type}_v${p.version}`);
  });
  for (const p of realProviders()) {
    for (const exe of targets(p)) {
      try { linkSync(p.binary, exe); } catch { copyFileSync(p.binary, exe); chmodSync(exe, 0o755); }
    }
  }
  for (const p of standinProviders()) {
    for (const exe of targets(p)) {
      // Node's path is stable on a machine, so the script (and the lock file's hash of it) is too.
      writeFileSync(exe, `#!/bin/sh\nexec ${sh(process.execPath)} ${sh(join(STANDIN_DIR, p.main))} "$@"\n`);
      chmodSync(exe, 0o755);
    }
  }
  const providers = mirroredProviders();

  const tlsDir = join(dir, "tls");
  mkdirSync(tlsDir, { mode: 0o700 });
  generateCert(tlsDir);
  // The stand-ins' .proto files as protobufjs JSON: each provider process skips parsing them.
  const protoJsonFile = join(dir, "proto.json");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { protoJson } = require(join(STANDIN_DIR, "lib", "proto.js")) as { protoJson(): object };
  writeFileSync(protoJsonFile, JSON.stringify(protoJson()));

  const cliConfigFile = join(dir, "terraform.rc");
  // No `direct {}` block: nothing may come from the network.
  writeFileSync(cliConfigFile, [
    "provider_installation {",
    "  filesystem_mirror {",
    `    path    = ${JSON.stringify(mirrorDir)}`,
    `    include = ${JSON.stringify(REGISTRIES.map((r) => `${r}/*/*`))}`,
    "  }",
    "}",
    "",
  ].join("\n"));

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, {
    TF_CLI_CONFIG_FILE: cliConfigFile,
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    STANDIN_PROVIDER_TLS_DIR: tlsDir,
    STANDIN_PROVIDER_PROTO_JSON: protoJsonFile,
  });
  // A plugin cache from the surrounding environment would bypass the mirror.
  delete env.TF_PLUGIN_CACHE_DIR;
  return { dir, mirrorDir, cliConfigFile, providers, env };
}

/**
 * A throwaway server key and self-signed certificate for the stand-ins' gRPC servers. go-plugin adds
 * the certificate from the handshake line to its roots and checks the name "localhost" against the
 * SAN (a CN alone is rejected), so it is a CA certificate for DNS:localhost. P-256: fast to generate.
 */
function generateCert(tlsDir: string): void {
  const key = join(tlsDir, "key.pem");
  const cert = join(tlsDir, "cert.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/O=cdktf-k3s-kilo stand-in provider/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
    "-addext", "extendedKeyUsage=serverAuth,clientAuth",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  chmodSync(key, 0o600);
}

function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
