/**
 * One benchmark run in a process of its own: load the library, build the cluster, synthesize it.
 * Usage: node synth-child.js <nodes> <servers> <variant> <outdir>
 * Prints one line of JSON with its own timings and peak RSS; the parent measures the wall time
 * of the whole process (node start-up and module loading included) around it.
 */
import { performance } from "perf_hooks";

const [nodesArg, serversArg, variantArg, outdir] = process.argv.slice(2);
const tLoad0 = performance.now();
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { App } = require("cdktf") as typeof import("cdktf");
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { buildCluster } = require("./cluster") as typeof import("./cluster");
const tBuild0 = performance.now();
const cpu0 = process.cpuUsage();
const app = new App({ outdir, skipValidation: false });
buildCluster(app, { nodes: Number(nodesArg), servers: Number(serversArg) }, (variantArg ?? "base") as import("./cluster").Variant);
const tSynth0 = performance.now();
app.synth();
const tEnd = performance.now();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({
  startupMs: tLoad0,
  loadMs: tBuild0 - tLoad0,
  buildMs: tSynth0 - tBuild0,
  synthMs: tEnd - tSynth0,
  totalMs: tEnd,
  /** CPU time (user + system) of build + synth: steadier than wall time on a shared machine. */
  cpuMs: (cpu.user + cpu.system) / 1000,
  maxRssKb: process.resourceUsage().maxRSS,
}) + "\n");
