/** Records synced and failed per run, over time: a uPlot chart, with the numbers in the table below it. */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

const height = 220;

/** The runs that have ended, oldest first. */
export function endedRuns(runs) {
  return runs.filter((r) => r.started_at && r.status !== 'RUNNING').sort((a, b) => new Date(a.started_at) - new Date(b.started_at));
}

export function RunsChart({ runs }) {
  const box = useRef(null);
  const ordered = endedRuns(runs);
  useEffect(() => {
    const el = box.current;
    // The canvas does not read CSS: the axes take the page's colours (light or dark).
    const style = getComputedStyle(el);
    const axis = { stroke: style.color, grid: { stroke: style.getPropertyValue('--line') }, ticks: { stroke: style.getPropertyValue('--line') } };
    const data = [ordered.map((r) => new Date(r.started_at).getTime() / 1000), ordered.map((r) => Number(r.succeeded ?? 0)), ordered.map((r) => Number(r.failed ?? 0))];
    const plot = new uPlot(
      {
        width: el.clientWidth,
        height,
        series: [{}, { label: 'Synced', stroke: '#1a7f37', width: 2, points: { size: 6 } }, { label: 'Failed', stroke: '#cf222e', width: 2, dash: [6, 4], points: { size: 6 } }],
        axes: [axis, { ...axis, label: 'Records', size: 60 }],
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      },
      data,
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: el.clientWidth, height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [ordered.map((r) => `${r.run_id}:${r.succeeded}:${r.failed}`).join()]);
  const last = ordered.at(-1);
  return html`<figure class="chart">
    <div ref=${box} role="img" aria-label=${`Records synced and failed in the last ${ordered.length} runs${last ? `; the latest synced ${last.succeeded ?? 0} and failed ${last.failed ?? 0}` : ''}`}></div>
    <figcaption>Records synced (solid) and failed (dashed) per run</figcaption>
  </figure>`;
}
