/**
 * Building blocks shared by every script we render: quoting, the errexit header and the step
 * that makes a non-root login user root through passwordless sudo.
 */
import { LateValues } from "./late-values";

/** Where our scripts keep state on a host: fingerprints and the upload staging directory. */
export const STATE_DIR = "/var/lib/cdktf-k3s-kilo";
/** Where secret-bearing files are uploaded before they are moved into place (0700, login user). */
export const STAGING_DIR = `${STATE_DIR}/staging`;

/**
 * Single-quote a value for sh. A Terraform value is escaped by Terraform itself at apply time
 * (`replace`), so user data from other resources cannot break out of the quotes either.
 */
export function shq(value: string | number | boolean, late: LateValues): string {
  const s = String(value);
  // cdktf writes Fn arguments into the HCL expression without escaping backslashes, and HCL has no
  // \' escape: the replacement '\'' must reach Terraform as "'\\''" (terraform validate refuses "'\''").
  if (late.isLate(s)) return `'${late.replace(s, "'", "'\\\\''")}'`;
  return quote(s);
}

/** Single-quote text fixed in this library's source; a Terraform value here is a bug, so it throws. */
export function shqLiteral(text: string): string {
  // cdktf's string marker, recognised by text as in firewall-rules.ts.
  if (/\$\{TfToken\[/.test(text)) throw new Error(`shqLiteral was given a Terraform value: ${text}`);
  return quote(text);
}

function quote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * The first lines of every script: the shell, errexit/nounset, re-running the script as root
 * through `sudo -n` when the login user is not root, and `cd /`: remote-exec starts in the login
 * user's home, which that user (or whoever got a file into it) controls. `sudo -n` never prompts; a user that needs a
 * password gets a message that says so instead of "a terminal is required".
 */
export function scriptHeader(purpose: string): string {
  return [scriptOpening(purpose), HEADER_REST].join("\n");
}

/** The first three lines of every script: shell, purpose, errexit/nounset. */
function scriptOpening(purpose: string): string {
  return ["#!/bin/sh", `# cdktf-k3s-kilo: ${purpose}`, "set -eu"].join("\n");
}

/** The rest of the header: root through `sudo -n`, umask, log and fail. */
const HEADER_REST = [
  "if [ \"$(id -u)\" -ne 0 ]; then",
  "  if ! sudo -n true 2>/dev/null; then",
  "    echo \"cdktf-k3s-kilo: user $(id -un) on $(hostname) cannot use sudo without a password; grant it passwordless sudo (NOPASSWD) or connect as root\" >&2",
  "    exit 1",
  "  fi",
  "  exec sudo -n /bin/sh \"$0\" \"$@\"",
  "fi",
  "# Root from here on: leave the login user's directory, so nothing run below reads from it, and",
  "# drop what would make a Python program (ufw is one) import modules from elsewhere.",
  "cd /",
  "unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE",
  "export PYTHONNOUSERSITE=1",
  "umask 077",
  "log() { printf 'cdktf-k3s-kilo [%s]: %s\\n' \"$(hostname)\" \"$*\"; }",
  "fail() { printf 'cdktf-k3s-kilo [%s]: error: %s\\n' \"$(hostname)\" \"$*\" >&2; exit 1; }",
  "",
].join("\n");

/**
 * A script that is the same on many nodes apart from a few parameters, in two parts: `node`, the
 * opening lines and this node's parameter assignments, and `program`, everything else (the same
 * text wherever the parameters are the only difference, so a stack can emit it once). The script
 * that runs is `node + "\n" + program` (joinScript): remote-exec joins its `inline` lines with a
 * newline into one file, and the sudo re-exec of `$0` re-runs that whole file, parameters included.
 */
export interface ScriptParts {
  readonly node: string;
  readonly program: string;
}

/** Split a script: opening and `params` (assignments only) per node; header rest and `body` shared. */
export function scriptParts(purpose: string, params: string[], body: string): ScriptParts {
  return {
    node: [scriptOpening(purpose), ...params].join("\n"),
    program: [HEADER_REST, body].join("\n"),
  };
}

/** The whole script as it runs on the host. */
export function joinScript(parts: ScriptParts): string {
  return `${parts.node}\n${parts.program}`;
}

/**
 * A POSIX `wait_for` helper: retries a command every two seconds until it succeeds or the bound
 * is reached. Every wait in our scripts goes through it, so none can hang an apply.
 */
export const WAIT_FOR_FUNCTION = [
  "# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND until it succeeds, at most SECONDS.",
  "wait_for() {",
  "  wait_limit=$1; wait_what=$2; shift 2",
  "  wait_start=$(date +%s)",
  "  until \"$@\" >/dev/null 2>&1; do",
  "    if [ $(( $(date +%s) - wait_start )) -ge \"$wait_limit\" ]; then",
  "      fail \"timed out after ${wait_limit}s waiting for ${wait_what}\"",
  "    fi",
  "    sleep 2",
  "  done",
  "}",
  "",
].join("\n");

/**
 * `node_ready NAME`: whether the Node NAME reports Ready, asked with `kubectl` (a bounded command
 * line, e.g. `timeout 10 /usr/local/bin/k3s kubectl`). Used by the server install and the rollout.
 */
export function nodeReadyFunction(kubectl: string): string {
  return [
    "node_ready() {",
    `  [ "$(${kubectl} get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]`,
    "}",
  ].join("\n");
}

/** The script that prepares the staging directory a secret-bearing file is uploaded into. */
export function renderStagingScript(): string {
  return joinScript(stagingScriptParts());
}

/** The staging script has no parameters: its program is the same on every node. */
export function stagingScriptParts(): ScriptParts {
  return scriptParts("prepare a private directory for uploading the K3s configuration", [], [
    `install -d -m 0755 -o root ${STATE_DIR}`,
    "# Owned by the login user (the upload runs as that user), readable by nobody else.",
    `install -d -m 0700 -o "\${SUDO_UID:-0}" ${STAGING_DIR}`,
    "",
  ].join("\n"));
}
