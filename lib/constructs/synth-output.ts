/**
 * What a user sees when their app synthesizes. cdktf keeps synth warnings in cdktf.out/manifest.json
 * only (the cdktf CLI prints them; `node main.js` and `app.synth()` never do), and a validation
 * error reaches the user wrapped in cdktf's exception, under a stack trace's source lines. Every
 * stack holding one of our constructs gets its synthesizer wrapped, so that `app.synth()` (in any
 * jsii language: the kernel forwards stderr to the host) writes to stderr:
 * - after the stack is written, each of its warnings once, `WARN [construct path]: message`,
 *   unless the cdktf CLI runs the app (it prints the manifest's warnings itself);
 * - before cdktf's error, the stack's validation errors, one per line, first.
 * Not exported from the package.
 */
import { AnnotationMetadataEntryType, IStackSynthesizer, ISynthesisSession, TerraformStack } from "cdktf";
import { IConstruct } from "constructs";

/**
 * Set by the cdktf CLI (and cdktn's) for the app it runs, "because we want to display the errors
 * ourselves": @cdktf/cli-core 0.21.0 src/lib/synth-stack.js passes
 * `CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS: "true"` with CDKTF_OUTDIR and CDKTF_CONTEXT_JSON, then
 * prints every annotation of manifest.json (src/lib/synth.js, printAnnotations). CDKTF_OUTDIR alone
 * would not do: users set it too, and the README's steps do.
 */
export const CLI_ENV = "CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS";

/** Whether the cdktf (or cdktn) CLI runs this app: it prints the manifest's warnings itself. */
export function runByCdktfCli(): boolean {
  return process.env[CLI_ENV] === "true";
}

const wrapped = new WeakSet<TerraformStack>();
/** Per stack: warnings already printed (a second synth of the same app prints no repeat). */
const printed = new WeakMap<TerraformStack, Set<string>>();

/** One line per message; a message's own line breaks indented under it. */
function line(level: string, path: string, message: string): string {
  return `${level} [${path}]: ${message.replace(/\n/g, "\n    ")}\n`;
}

function annotations(stack: TerraformStack, type: string): Array<{ path: string; message: string }> {
  return stack.node.findAll().flatMap((c: IConstruct) => c.node.metadata
    .filter((m) => m.type === type)
    .map((m) => ({ path: c.node.path, message: String(m.data) })));
}

/** Each warning of `stack` not printed yet, to stderr. */
function printWarnings(stack: TerraformStack): void {
  if (runByCdktfCli()) return;
  let seen = printed.get(stack);
  if (!seen) printed.set(stack, seen = new Set());
  let out = "";
  for (const w of annotations(stack, AnnotationMetadataEntryType.WARN)) {
    const key = `${w.path}\0${w.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out += line("WARN", w.path, w.message);
  }
  if (out) process.stderr.write(out);
}

/**
 * The stack's validation errors (as cdktf's runAllValidations collects them) and error
 * annotations, as the first lines of output. Nothing when there are none: the failure is then
 * something else, which cdktf's own message describes.
 */
function printErrors(stack: TerraformStack): void {
  const errors: Array<{ path: string; message: string }> = [];
  for (const c of stack.node.findAll()) for (const message of c.node.validate()) errors.push({ path: c.node.path, message });
  errors.push(...annotations(stack, AnnotationMetadataEntryType.ERROR));
  if (errors.length === 0) return;
  process.stderr.write(`Synth failed: ${errors.length} error${errors.length === 1 ? "" : "s"} in stack "${stack.node.id}":\n` +
    errors.map((e) => line("ERROR", e.path, e.message)).join("") +
    "(cdktf's report of the same errors follows)\n");
}

/** Printing is a courtesy: it never changes what the synth does or throws. */
function quietly(print: () => void): void {
  try {
    print();
  } catch {
    // nothing to add: the synth's own outcome stands
  }
}

/**
 * Wrap the synthesizer of `stack` (once): its warnings are printed after it is written, its errors
 * before cdktf throws. A synthesizer set after this runs replaces the wrapper (and the printing).
 */
export function reportAtSynth(scope: IConstruct): void {
  const stack = TerraformStack.of(scope);
  if (wrapped.has(stack)) return;
  wrapped.add(stack);
  const inner: IStackSynthesizer = stack.synthesizer;
  stack.synthesizer = {
    synthesize(session: ISynthesisSession): void {
      try {
        inner.synthesize(session);
      } catch (e) {
        if (!session.skipValidation) quietly(() => printErrors(stack));
        throw e;
      }
      quietly(() => printWarnings(stack));
    },
  };
}
