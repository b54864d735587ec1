/**
 * Writes the cluster report next to cdktf.out: Markdown and Graphviz DOT from the library's
 * ClusterReport, plus an SVG of the diagram drawn by Graphviz compiled to WebAssembly
 * (@viz-js/viz, a devDependency: it works offline and keeps 5 MB of Graphviz out of the library's
 * install — the library writes DOT, which any Graphviz turns into a picture).
 */
import { writeFileSync } from "fs";
import { join } from "path";
import { IConstruct } from "constructs";
import { ClusterReport, ClusterReportOptions } from "../lib";

/** The DOT text as SVG, laid out by Graphviz (circo, as the graph asks). */
export async function renderSvg(dot: string): Promise<string> {
  const { instance } = await import("@viz-js/viz");
  const viz = await instance();
  return viz.renderString(dot, { format: "svg", engine: "circo" });
}

/** Write cluster-report.md, .dot and .svg into `outdir`; returns the paths written. */
export async function writeClusterReport(scope: IConstruct, outdir: string, options: ClusterReportOptions = {}): Promise<string[]> {
  const report = ClusterReport.of(scope, options);
  const paths = report.writeTo(outdir);
  const svgPath = join(outdir, "cluster-report.svg");
  writeFileSync(svgPath, await renderSvg(report.dot));
  return [...paths, svgPath];
}
