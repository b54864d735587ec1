/**
 * Building blocks shared by every script we render: quoting, the errexit header and the step
 * that makes a non-root login user root through passwordless sudo.
 */
import { Fn, Token } from "cdktf";

/** Where our scripts keep state on a host: fingerprints and the upload staging directory. */
export const STATE_DIR = "/var/lib/cdktf-k3s-kilo";
/** Where secret-bearing files are uploaded before they are moved into place (0700, login user). */
export const STAGING_DIR = `${STATE_DIR}/staging`;

/**
 * Single-quote a value for sh. A Terraform token is escaped by Terraform itself at apply time
 * (`replace`), so user data from other resources cannot break out of the quotes either.
 */
export function shq(value: string | number | boolean): string {
  const s = String(value);
  // cdktf writes Fn arguments into the HCL expression without escaping backslashes, and HCL has no
  // \' escape: the replacement '\'' must reach Terraform as "'\\''" (terraform validate refuses "'\''").
  if (Token.isUnresolved(s)) return `'${Fn.replace(s, "'", "'\\\\''")}'`;
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * The first lines of every script: the shell, errexit/nounset, and re-running the script as root
 * through `sudo -n` when the login user is not root. `sudo -n` never prompts; a user that needs a
 * password gets a message that says so instead of "a terminal is required".
 */
export function scriptHeader(purpose: string): string {
  return [
    "#!/bin/sh",
    `# cdktf-k3s-kilo: ${purpose}`,
    "set -eu",
    "if [ \"$(id -u)\" -ne 0 ]; then",
    "  if ! sudo -n true 2>/dev/null; then",
    "    echo \"cdktf-k3s-kilo: user $(id -un) on $(hostname) cannot use sudo without a password; grant it passwordless sudo (NOPASSWD) or connect as root\" >&2",
    "    exit 1",
    "  fi",
    "  exec sudo -n /bin/sh \"$0\" \"$@\"",
    "fi",
    "umask 077",
    "log() { printf 'cdktf-k3s-kilo [%s]: %s\\n' \"$(hostname)\" \"$*\"; }",
    "fail() { printf 'cdktf-k3s-kilo [%s]: error: %s\\n' \"$(hostname)\" \"$*\" >&2; exit 1; }",
    "",
  ].join("\n");
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

/** The script that prepares the staging directory a secret-bearing file is uploaded into. */
export function renderStagingScript(): string {
  return [
    scriptHeader("prepare a private directory for uploading the K3s configuration"),
    `install -d -m 0755 -o root ${STATE_DIR}`,
    "# Owned by the login user (the upload runs as that user), readable by nobody else.",
    `install -d -m 0700 -o "\${SUDO_UID:-0}" ${STAGING_DIR}`,
    "",
  ].join("\n");
}
