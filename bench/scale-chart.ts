// The rating-scale curve as an SVG (d3-scale and d3-shape, as the web app's charts): judgments per
// second against raw inserts, and the paced phase's p99, over the project's comparisons (log
// scale), one line per rater count.
import { scaleLinear, scaleLog } from 'd3-scale';
import { line } from 'd3-shape';

export interface ScalePoint {
  /** Comparisons in the project when the point ran, and the size asked for. */
  comparisons: number;
  size: number;
  raters: number;
  judgments: number;
  /** Judgments per second without pauses, raw inserts per second, and their ratio. */
  rate: number;
  raw: number;
  ratio: number;
  /** The paced phase's next-comparison latency (ms). */
  p50: number;
  p99: number;
  errors: number;
  /** Load average (1/5/15 min) before → after the point. */
  load: string;
  pages?: Record<string, number | null>;
}

const WIDTH = 340;
const HEIGHT = 220;
const MARGIN = { top: 28, right: 16, bottom: 40, left: 52 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(
  points: ScalePoint[],
  value: (point: ScalePoint) => number,
  title: string,
  target: number,
  offsetX: number,
): string {
  const xs = points.map((point) => point.comparisons);
  const x = scaleLog()
    .domain([Math.min(...xs) / 1.5, Math.max(...xs) * 1.5])
    .range([MARGIN.left, WIDTH - MARGIN.right]);
  const y = scaleLinear()
    .domain([0, Math.max(target, ...points.map(value)) * 1.15])
    .nice()
    .range([HEIGHT - MARGIN.bottom, MARGIN.top]);
  const parts: string[] = [`<g transform="translate(${offsetX},0)">`];
  parts.push(`<text x="${MARGIN.left}" y="16" font-size="12" font-weight="bold">${escape(title)}</text>`);
  for (const tick of y.ticks(5)) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 6}" y="${y(tick) + 4}" font-size="10" text-anchor="end">${tick}</text>`,
    );
  }
  for (const tick of [...new Set(points.map((point) => point.size))]) {
    const at = points.find((point) => point.size === tick)!.comparisons;
    const name = tick >= 1_000_000 ? `${tick / 1_000_000}M` : `${tick / 1_000}k`;
    parts.push(
      `<text x="${x(at)}" y="${HEIGHT - MARGIN.bottom + 14}" font-size="10" text-anchor="middle">${name}</text>`,
    );
  }
  parts.push(
    `<text x="${(MARGIN.left + WIDTH - MARGIN.right) / 2}" y="${HEIGHT - 8}" font-size="10" text-anchor="middle">comparisons in the project (log scale)</text>`,
    `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(target)}" y2="${y(target)}" stroke="#888" stroke-dasharray="4 3"/>`,
  );
  const counts = [...new Set(points.map((point) => point.raters))].sort((a, b) => a - b);
  counts.forEach((count, index) => {
    const series = points
      .filter((point) => point.raters === count)
      .sort((a, b) => a.comparisons - b.comparisons);
    const color = COLORS[index % COLORS.length]!;
    const path = line<ScalePoint>()
      .x((point) => x(point.comparisons))
      .y((point) => y(value(point)))(series);
    parts.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const point of series)
      parts.push(`<circle cx="${x(point.comparisons)}" cy="${y(value(point))}" r="3" fill="${color}"/>`);
    parts.push(
      `<text x="${WIDTH - MARGIN.right}" y="${MARGIN.top + 12 * index}" font-size="10" text-anchor="end" fill="${color}">${count} raters</text>`,
    );
  });
  parts.push('</g>');
  return parts.join('');
}

/** Two panels side by side: throughput over raw inserts (target line at the smallest size's), p99. */
export function drawScaleChart(points: ScalePoint[]): string {
  const smallest = Math.min(...points.map((point) => point.size));
  const baseline = Math.max(...points.filter((point) => point.size === smallest).map((point) => point.ratio));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * WIDTH}" height="${HEIGHT}" viewBox="0 0 ${2 * WIDTH} ${HEIGHT}" font-family="sans-serif" role="img">`,
    '<title>Rating throughput and latency as the project grows</title>',
    `<rect width="${2 * WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    panel(
      points,
      (point) => point.ratio,
      'judgments/s over raw inserts/s (dashed: 0.9 of the first)',
      0.9 * baseline,
      0,
    ),
    panel(points, (point) => point.p99, 'next comparison p99, ms (paced; dashed: 25)', 25, WIDTH),
    '</svg>',
    '',
  ].join('\n');
}
