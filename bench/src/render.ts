/** Renders a Vega-Lite spec to an SVG string in Node: vega-lite compiles it, vega's headless view draws it. */
import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // renderer 'none': no canvas in Node; vega estimates text widths instead of measuring them.
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
