/**
 * Rolling restarts of agents. An agent's install step is wrapped by two scripts that run on the
 * cluster's first server (the only place with admin credentials; agents never get them):
 *
 * - before: when the agent's Node already exists (so this is a change, not a first install), wait
 *   for a rollout slot, then cordon and drain the node (bounded). A slot is the node label
 *   `cdktf-k3s-kilo/rolling`: at most `maxUnavailable` nodes carry it; taking one is done under
 *   flock on the server, so agents started together by Terraform cannot both take the last slot.
 * - after: when the node carries the label, wait (bounded) for it to be Ready again, uncordon it
 *   and give the slot back. A node the operator had cordoned before the rollout (the label's value
 *   is then KEEP_CORDONED) is left cordoned.
 *
 * A restart is needed only when what K3s runs changes. `inputs` is a digest of exactly that (the
 * agent's version, installer and config); after a successful step it is recorded on the server, and
 * a later step with the same inputs (a new release of this library that only rewords a script, say)
 * skips the slot and the drain: the install on the agent then finds its fingerprint unchanged and
 * does not restart K3s either.
 *
 * On a first install the Node does not exist yet, so both are a lookup and nothing else: a fresh
 * deploy stays parallel. A failed restart keeps its slot (its node is unavailable), so a broken
 * upgrade stops after `maxUnavailable` nodes instead of spreading; the next apply re-runs the
 * step, which finds its own label and carries on.
 */
import { LateValues } from "./late-values";
import { joinScript, nodeReadyFunction, ScriptParts, scriptParts, shq, STATE_DIR, WAIT_FOR_FUNCTION } from "./shell";

/** The node label that marks a node as being restarted by a rollout. */
export const ROLLING_LABEL = "cdktf-k3s-kilo/rolling";
/** The label's value when the node was cordoned before the rollout: it stays cordoned after. */
export const KEEP_CORDONED = "keep-cordoned";

export interface RolloutSettings {
  /** The agent's Kubernetes node name. */
  readonly nodeName: string;
  /** How many agents may be cordoned for a restart at once (>= 1). */
  readonly maxUnavailable: number;
  /** Bound for `kubectl drain`. */
  readonly drainTimeoutSeconds: number;
  /** Bound for waiting for a free slot. */
  readonly slotTimeoutSeconds: number;
  /** Bound for the node to be Ready again after its restart. */
  readonly readyTimeoutSeconds: number;
  /**
   * Digest of what decides whether the agent's K3s restarts (version, installer, config): the same
   * digest as last time means no restart, so no drain. Hex and `-` only (may hold a Terraform token).
   */
  readonly inputs: string;
}

/**
 * Where the first server records each agent's last inputs: a file named by a hash of the node
 * name, so any name (a Terraform value included) stays inside the directory.
 */
const RECORD_LINES = [
  `RECORD_DIR=${STATE_DIR}/rollout`,
  "record=\"$RECORD_DIR/$(printf '%s' \"$NODE\" | sha256sum | cut -c1-32)\"",
];

const KUBECTL = "timeout 30 /usr/local/bin/k3s kubectl";

/** Runs on the first server before the agent's install: slot, cordon, drain. */
export function renderRolloutBeforeScript(s: RolloutSettings, late: LateValues): string {
  return joinScript(rolloutBeforeParts(s, late));
}

/** The before script split for sharing: node name and bounds are parameters. */
export function rolloutBeforeParts(s: RolloutSettings, late: LateValues): ScriptParts {
  const drain = Math.floor(s.drainTimeoutSeconds);
  return scriptParts("before restarting an agent: wait for a rollout slot, cordon and drain it", [
    `NODE=${shq(s.nodeName, late)}`,
    `MAX_UNAVAILABLE=${Math.max(1, Math.floor(s.maxUnavailable))}`,
    `SLOT_TIMEOUT=${Math.floor(s.slotTimeoutSeconds)}`,
    `DRAIN_TIMEOUT=${drain}`,
    `DRAIN_BOUND=${drain + 30}`,
    `INPUTS=${shq(s.inputs, late)}`,
  ], [
    `LABEL=${ROLLING_LABEL}`,
    `KEEP_CORDONED=${KEEP_CORDONED}`,
    `LOCK=${STATE_DIR}/rollout.lock`,
    ...RECORD_LINES,
    "if [ ! -x /usr/local/bin/k3s ]; then",
    "  log \"K3s is not on this server; nothing to coordinate\"",
    "  exit 0",
    "fi",
    `if ! ${KUBECTL} get node "$NODE" >/dev/null 2>&1; then`,
    "  log \"node $NODE is not in the cluster yet: a first install, nothing to drain\"",
    "  exit 0",
    "fi",
    "# Nothing that restarts K3s changed since the last successful step: no slot, no drain.",
    "if [ -n \"$INPUTS\" ] && [ -f \"$record\" ] && [ \"$(cat \"$record\")\" = \"$INPUTS\" ]; then",
    "  log \"$NODE runs the same K3s version, installer and config as after its last deploy: no restart, so no drain\"",
    "  exit 0",
    "fi",
    `install -d -m 0755 ${STATE_DIR}`,
    "# A node the operator cordoned stays cordoned after its restart: the slot's label value says so.",
    "# Read before the slot is taken; a re-run that already holds the slot keeps the first value.",
    `unschedulable=$(${KUBECTL} get node "$NODE" -o 'jsonpath={.spec.unschedulable}') || fail "cannot read whether $NODE is cordoned; nothing was changed"`,
    "if [ \"$unschedulable\" = true ]; then slot_value=$KEEP_CORDONED; else slot_value=true; fi",
    "# Take a slot: under the lock, count the nodes holding one; ours may already hold one (a re-run).",
    "take_slot() {",
    "  (",
    "    flock -w 30 9 || exit 1",
    `    holders=$(${KUBECTL} get nodes -l "$LABEL" -o name) || exit 1`,
    "    if printf '%s\\n' \"$holders\" | grep -qx \"node/$NODE\"; then exit 0; fi",
    "    count=$(printf '%s\\n' \"$holders\" | grep -c '^node/' || true)",
    "    [ \"$count\" -lt \"$MAX_UNAVAILABLE\" ] || exit 1",
    `    ${KUBECTL} label node "$NODE" "$LABEL=$slot_value" --overwrite >/dev/null`,
    "  ) 9>\"$LOCK\"",
    "}",
    "start=$(date +%s)",
    "until take_slot; do",
    "  if [ $(( $(date +%s) - start )) -ge \"$SLOT_TIMEOUT\" ]; then",
    `    holders=$(${KUBECTL} get nodes -l "$LABEL" -o name 2>/dev/null | sed 's|^node/||' | tr '\\n' ' ' || true)`,
    "    fail \"no rollout slot for $NODE within ${SLOT_TIMEOUT}s: $MAX_UNAVAILABLE node(s) labelled $LABEL are still restarting: ${holders:-unknown} (a failed restart keeps its label; fix that node and deploy again, or raise rollout.slotTimeoutSeconds)\"",
    "  fi",
    "  sleep 3",
    "done",
    "log \"rollout: $NODE took a slot ($MAX_UNAVAILABLE at a time); cordoning and draining\"",
    `${KUBECTL} cordon "$NODE" >/dev/null`,
    "# Bounded: a PodDisruptionBudget that never allows an eviction must not hang the deploy.",
    "if ! timeout \"$DRAIN_BOUND\" /usr/local/bin/k3s kubectl drain \"$NODE\" --ignore-daemonsets --delete-emptydir-data --timeout=\"$DRAIN_TIMEOUT\"s; then",
    "  log \"warning: $NODE did not drain within ${DRAIN_TIMEOUT}s; restarting it anyway (K3s keeps running containers across a restart)\"",
    "fi",
    "",
  ].join("\n"));
}

/** Runs on the first server after the agent's install: Ready again, uncordon, slot back. */
export function renderRolloutAfterScript(s: RolloutSettings, late: LateValues): string {
  return joinScript(rolloutAfterParts(s, late));
}

/** The after script split for sharing: node name and readiness bound are parameters. */
export function rolloutAfterParts(s: RolloutSettings, late: LateValues): ScriptParts {
  return scriptParts("after restarting an agent: wait until it is Ready, uncordon it, free its slot", [
    `NODE=${shq(s.nodeName, late)}`,
    `READY_TIMEOUT=${Math.floor(s.readyTimeoutSeconds)}`,
    `INPUTS=${shq(s.inputs, late)}`,
  ], [
    WAIT_FOR_FUNCTION,
    `LABEL=${ROLLING_LABEL}`,
    `KEEP_CORDONED=${KEEP_CORDONED}`,
    ...RECORD_LINES,
    "# Recorded only once the agent's step succeeded: the next step with these inputs skips the drain.",
    "record_inputs() {",
    "  install -d -m 0700 \"$RECORD_DIR\"",
    "  printf '%s\\n' \"$INPUTS\" > \"$record.tmp\"",
    "  mv -f \"$record.tmp\" \"$record\"",
    "}",
    "if [ ! -x /usr/local/bin/k3s ]; then exit 0; fi",
    "# A failed lookup must not pass for \"not cordoned\": the node would stay cordoned, holding its slot.",
    `holders=$(${KUBECTL} get nodes -l "$LABEL" -o name) || fail "cannot list the nodes labelled $LABEL on this server; $NODE may still be cordoned"`,
    "if ! printf '%s\\n' \"$holders\" | grep -qx \"node/$NODE\"; then",
    "  log \"$NODE was not cordoned by a rollout; nothing to do\"",
    "  record_inputs",
    "  exit 0",
    "fi",
    nodeReadyFunction(KUBECTL),
    "wait_for \"$READY_TIMEOUT\" \"node $NODE to be Ready after its restart\" node_ready \"$NODE\"",
    `kept=$(${KUBECTL} get nodes -l "$LABEL=$KEEP_CORDONED" -o name) || fail "cannot list the nodes labelled $LABEL=$KEEP_CORDONED on this server; $NODE may still be cordoned"`,
    "if printf '%s\\n' \"$kept\" | grep -qx \"node/$NODE\"; then",
    `  ${KUBECTL} label node "$NODE" "$LABEL-" >/dev/null`,
    "  log \"rollout: $NODE is Ready; it was cordoned before the rollout; left cordoned (uncordon it yourself when you want); slot released\"",
    "else",
    `  ${KUBECTL} uncordon "$NODE" >/dev/null`,
    `  ${KUBECTL} label node "$NODE" "$LABEL-" >/dev/null`,
    "  log \"rollout: $NODE is Ready and schedulable again; slot released\"",
    "fi",
    "record_inputs",
    "",
  ].join("\n"));
}
