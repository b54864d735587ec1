/**
 * The environment the real `terraform` binary runs in during tests: the stand-in providers
 * (test/standin-providers/) installed into a filesystem mirror, and a CLI configuration that installs
 * providers only from that mirror, so `terraform init` works offline and writes a lock file.
 *
 * Built once per test process in a temp dir, removed when the process exits. The machine's own
 * TF_CLI_CONFIG_FILE (/root/.terraformrc, which does not exist) is overridden.
 *
 * Mirror layout (Terraform's "unpacked" filesystem_mirror layout, docs/cli/config/config-file):
 *   <dir>/mirror/registry.terraform.io/<namespace>/<type>/<version>/linux_amd64/terraform-provider-<type>_v<version>
 * Each executable is a two-line shell script that execs Node on the stand-in's JavaScript. Its text
 * is the same on every run of the same checkout, so a lock file written by one run matches the next.
 *
 * One TLS key and certificate (SAN DNS:localhost, as go-plugin's AutoMTLS requires) are generated
 * here per test run with the openssl CLI and handed to every provider process through
 * STANDIN_PROVIDER_TLS_DIR: generating a key in each of the 4–9 provider processes Terraform starts
 * per command would cost ~200 ms each. Never committed; removed with the temp dir. Likewise the
 * stand-ins' .proto files are converted to JSON once (STANDIN_PROVIDER_PROTO_JSON).
 */
import { execFileSync } from "child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join, resolve } from "path";

export const STANDIN_DIR = resolve(__dirname, "..", "standin-providers");

export interface StandinProvider {
  readonly namespace: string;
  readonly type: string;
  readonly version: string;
  /** Script under test/standin-providers/. */
  readonly main: string;
}

export interface TerraformEnv {
  /** The temp dir holding everything below (removed at process exit). */
  readonly dir: string;
  /** The filesystem mirror's root. */
  readonly mirrorDir: string;
  /** The CLI configuration file (TF_CLI_CONFIG_FILE). */
  readonly cliConfigFile: string;
  /** The stand-in providers in the mirror, with their versions. */
  readonly providers: readonly StandinProvider[];
  /**
   * Environment for `terraform`: process.env plus TF_CLI_CONFIG_FILE, CHECKPOINT_DISABLE=1,
   * TF_IN_AUTOMATION=1, STANDIN_PROVIDER_TLS_DIR and STANDIN_PROVIDER_PROTO_JSON.
   */
  readonly env: Record<string, string>;
}

/** The stand-in providers and versions (test/standin-providers/providers.json). */
export function standinProviders(): StandinProvider[] {
  return JSON.parse(readFileSync(join(STANDIN_DIR, "providers.json"), "utf8")).providers;
}

let cached: TerraformEnv | undefined;

/** The test process's Terraform environment, built on first use. */
export function terraformEnv(): TerraformEnv {
  if (!cached) cached = build();
  return cached;
}

function build(): TerraformEnv {
  const dir = mkdtempSync(join(tmpdir(), "standin-tf-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

  const mirrorDir = join(dir, "mirror");
  const providers = standinProviders();
  for (const p of providers) {
    const target = join(mirrorDir, "registry.terraform.io", p.namespace, p.type, p.version, "linux_amd64");
    mkdirSync(target, { recursive: true });
    const exe = join(target, `terraform-provider-${p.type}_v${p.version}`);
    // Node's path is stable on a machine, so the script (and the lock file's hash of it) is too.
    writeFileSync(exe, `#!/bin/sh\nexec ${sh(process.execPath)} ${sh(join(STANDIN_DIR, p.main))} "$@"\n`);
    chmodSync(exe, 0o755);
  }

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
    `    include = ["registry.terraform.io/*/*"]`,
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
