/**
 * The critical path of an upgrade, next to the fresh deploy's: the same stage computation as
 * criticalPath (analyze.ts), counting only the work steps that a change replaces (planDiff).
 * Servers restart one at a time through their join chain, so each is a stage of its own in the
 * graph. Agents' restarts (each one step: drain, install, uncordon) are all in one stage of the
 * graph, but at run time they take turns through the rollout slots on the first server: at most
 * maxUnavailable at once, so `rollingWaves` = ceil(agents replaced / maxUnavailable) turns.
 */
import { buildGraph, isWork, kindOf, planDiff, SynthJson } from "./analyze";

export interface UpgradePath {
  /** Stages of replaced work steps on the longest chain (as CriticalPath.stages.length). */
  readonly stages: number;
  /** What each stage holds, e.g. "1 server install". */
  readonly kinds: string[];
  /** Agent installs the change replaces. */
  readonly agentsReplaced: number;
  /** Turns the agents take at run time with the given maxUnavailable. */
  readonly rollingWaves: number;
}

export function upgradePath(before: SynthJson, after: SynthJson, maxUnavailable = 1): UpgradePath {
  const diff = planDiff(before, after);
  const nodes = buildGraph(after);
  const by = new Map(nodes.map((n) => [n.id, n]));
  const replaced = (id: string) => diff.get(id) === "replace" || diff.get(id) === "add";
  const counts = (id: string) => isWork(by.get(id)!) && replaced(id);
  const stage = new Map<string, number>();
  const visit = (id: string): number => {
    const known = stage.get(id);
    if (known !== undefined) return known;
    const n = by.get(id)!;
    const s = Math.max(0, ...n.deps.filter((d) => by.has(d)).map(visit)) + (counts(id) ? 1 : 0);
    stage.set(id, s);
    return s;
  };
  nodes.forEach((n) => visit(n.id));
  const max = Math.max(0, ...stage.values());
  const kinds: string[] = [];
  for (let i = 1; i <= max; i++) {
    const here = nodes.filter((n) => counts(n.id) && stage.get(n.id) === i);
    const k: Record<string, number> = {};
    for (const n of here) {
      k[kindOf(n)] = (k[kindOf(n)] ?? 0) + 1;
    }
    kinds.push(Object.entries(k).map(([kind, c]) => `${c} ${kind}`).join(" + "));
  }
  const agentsReplaced = nodes.filter((n) => replaced(n.id) && kindOf(n) === "agent install").length;
  return { stages: max, kinds, agentsReplaced, rollingWaves: Math.ceil(agentsReplaced / Math.max(1, maxUnavailable)) };
}
