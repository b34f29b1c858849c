/** A figure of `npm run bench`: one row of its table, and one entry of bench/results.json. */
export interface Figure {
  /** The goal it belongs to (1-7), or '' for a figure that explains one. */
  goal: string;
  figure: string;
  value: number;
  /** The unit of `value`: ms, records/s, ratio, MiB, requests/s, requests. */
  unit: string;
  /** The goal's bound, e.g. `<= 1.5`; absent for an explaining figure. */
  target?: { op: '<=' | '>='; value: number };
  /** How the value reads in the table, when not `value unit`. */
  text?: string;
}

/** Whether a figure meets its goal; undefined when it has none. */
export function met(f: Figure): boolean | undefined {
  if (!f.target) return undefined;
  return f.target.op === '<=' ? f.value <= f.target.value : f.value >= f.target.value;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** A value as the table shows it. */
function shown(f: Figure): string {
  if (f.text) return f.text;
  if (f.unit === 'ratio') return `${f.value.toFixed(2)}×`;
  return `${f.unit === 'requests/s' ? f.value.toFixed(1) : int(f.value)} ${f.unit}`;
}

/** The figures as a Markdown table: goal, figure, value, goal's bound, met. */
export function figureTable(figures: Figure[]): string[] {
  const rows = [
    ['#', 'figure', 'value', 'goal', 'met'],
    ...figures.map((f) => {
      const ok = met(f);
      const bound = f.target ? `${f.target.op} ${f.unit === 'ratio' ? `${f.target.value.toFixed(2)}×` : `${int(f.target.value)} ${f.unit}`}` : '';
      return [f.goal, f.figure, shown(f), bound, ok === undefined ? '' : ok ? 'yes' : 'NO'];
    }),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)];
}
