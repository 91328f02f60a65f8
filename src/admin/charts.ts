/**
 * Charts as server-rendered SVG: no script, no library, nothing fetched. Colours come from classes styled in
 * style.css (light and dark); every chart has a title and a description, and the page a table of its figures.
 */

export interface GrowthDay {
  day: string;
  confirmed: number;
  unsubscribed: number;
  bounced: number;
}

export interface SendoutPoint {
  /** Seconds since the essay was published. */
  at: number;
  sent: number;
  skipped: number;
  failed: number;
  unknown: number;
  pending: number;
}

const W = 640;
const H = 240;
const PAD = { top: 20, right: 12, bottom: 40 };

/**
 * The largest label font, in the chart's own units: style.css sets 24px under 40rem, where a chart is drawn
 * at half its size or less. Labels are laid out for it, so they fit and keep apart at every width.
 */
const LABEL_EM = 24;
/** Two labels on the value axis are at least this far apart, centre to centre (a line and some air). */
const LABEL_GAP = LABEL_EM * 1.25;
/** Of the plot's height, the least each side of the growth chart's zero line keeps when it has a label. */
const MIN_SIDE = (LABEL_GAP + 4) / (H - PAD.top - PAD.bottom);

/**
 * Room left of the plot for the value labels: their widest at 0.7 em a character, which holds for the digits
 * and signs of the common sans-serif fonts (DejaVu Sans, the widest of them, draws "+" at 0.84 em, digits at 0.64).
 */
function leftPad(labels: string[]): number {
  const widest = Math.max(1, ...labels.map((l) => l.length));
  return Math.ceil(widest * LABEL_EM * 0.7 + 14);
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/** A round upper bound for an axis: 1, 2, 5 × 10^n. */
function niceMax(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const n = (x: number) => Number(x.toFixed(1));

function frame(id: string, title: string, description: string, body: string): string {
  return (
    `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-title ${id}-desc" ` +
    `xmlns="http://www.w3.org/2000/svg">` +
    `<title id="${id}-title">${escapeXml(title)}</title><desc id="${id}-desc">${escapeXml(description)}</desc>` +
    `${body}</svg>`
  );
}

function axisLabel(x: number, y: number, text: string, anchor = 'end'): string {
  return `<text class="axis" x="${n(x)}" y="${n(y)}" text-anchor="${anchor}">${escapeXml(text)}</text>`;
}

/**
 * Labels of the value axis, centred on their values, in order of importance: one that would come closer than
 * LABEL_GAP to a label already placed is left out, so no two ever overlap (the table has every figure).
 */
function valueLabels(left: number, labels: { y: number; text: string }[]): string {
  const placed: number[] = [];
  const out: string[] = [];
  for (const label of labels) {
    if (placed.some((y) => Math.abs(y - label.y) < LABEL_GAP)) continue;
    placed.push(label.y);
    out.push(
      `<text class="axis" x="${n(left - 10)}" y="${n(label.y)}" dy="0.35em" text-anchor="end">${escapeXml(label.text)}</text>`,
    );
  }
  return out.join('');
}

/**
 * Growth per day: new confirmed subscribers as bars above the line, unsubscribed and bounced below it
 * (stacked), one column per day.
 */
export function growthChart(days: GrowthDay[]): string {
  const maxUp = Math.max(0, ...days.map((d) => d.confirmed));
  const maxDown = Math.max(0, ...days.map((d) => d.unsubscribed + d.bounced));
  const { up, down } = growthScale(maxUp, maxDown);
  const plotH = H - PAD.top - PAD.bottom;
  // The zero line splits the height in proportion to the two sides' scales (one scale for both).
  const zeroY = PAD.top + (plotH * up) / (up + down);
  const scale = plotH / (up + down);
  const upLabel = `+${up}`;
  const downLabel = `−${down}`;
  const left = leftPad(maxDown > 0 ? [upLabel, downLabel] : [upLabel]);
  const plotW = W - left - PAD.right;
  const col = plotW / Math.max(1, days.length);
  const bar = Math.max(1, col * 0.8);
  const parts: string[] = [];
  parts.push(`<line class="grid" x1="${left}" x2="${W - PAD.right}" y1="${n(zeroY)}" y2="${n(zeroY)}"/>`);
  parts.push(
    valueLabels(left, [
      { y: zeroY, text: '0' },
      { y: PAD.top, text: upLabel },
      ...(maxDown > 0 ? [{ y: PAD.top + plotH, text: downLabel }] : []),
    ]),
  );
  days.forEach((d, i) => {
    const x = n(left + i * col + (col - bar) / 2);
    const w = n(bar);
    if (d.confirmed > 0) {
      const h = d.confirmed * scale;
      parts.push(`<rect class="confirmed" x="${x}" y="${n(zeroY - h)}" width="${w}" height="${n(h)}"/>`);
    }
    if (d.unsubscribed > 0) {
      const h = d.unsubscribed * scale;
      parts.push(`<rect class="unsubscribed" x="${x}" y="${n(zeroY)}" width="${w}" height="${n(h)}"/>`);
    }
    if (d.bounced > 0) {
      const h = d.bounced * scale;
      const y = zeroY + d.unsubscribed * scale;
      parts.push(`<rect class="bounced" x="${x}" y="${n(y)}" width="${w}" height="${n(h)}"/>`);
    }
  });
  const first = days[0]?.day ?? '';
  const last = days[days.length - 1]?.day ?? '';
  parts.push(axisLabel(left, H - 8, first, 'start'));
  if (last !== first) parts.push(axisLabel(W - PAD.right, H - 8, last, 'end'));
  const totals = days.reduce(
    (t, d) => ({
      confirmed: t.confirmed + d.confirmed,
      unsubscribed: t.unsubscribed + d.unsubscribed,
      bounced: t.bounced + d.bounced,
    }),
    { confirmed: 0, unsubscribed: 0, bounced: 0 },
  );
  return frame(
    'growth',
    `Growth per day, ${first} to ${last}`,
    `${totals.confirmed} new confirmed subscribers (bars above the line), ${totals.unsubscribed} unsubscribed and ` +
      `${totals.bounced} bounced (bars below the line) over ${days.length} days. The table below lists each day.`,
    parts.join(''),
  );
}

/**
 * The two sides of the growth chart, as round numbers on one scale. A side with something on it keeps at least
 * MIN_SIDE of the height, so its label and the zero line's never meet (+100 over −5 would put them a few
 * units apart); the axis then reaches past the data, never distorts it. A side with nothing keeps a sliver.
 */
export function growthScale(maxUp: number, maxDown: number): { up: number; down: number } {
  const ratio = MIN_SIDE / (1 - MIN_SIDE);
  let up = niceMax(maxUp);
  if (maxDown === 0) return { up, down: up / 10 };
  let down = niceMax(maxDown);
  if (down < up * ratio) down = niceMax(up * ratio);
  if (up < down * ratio) up = niceMax(down * ratio);
  return { up, down };
}

/** A send-out over time: stacked areas of sent, skipped, failed and unknown, with what is still pending on top. */
export function sendoutChart(points: SendoutPoint[], total: number): string {
  const max = Math.max(1, total);
  const plotH = H - PAD.top - PAD.bottom;
  const left = leftPad([String(max)]);
  const plotW = W - left - PAD.right;
  const end = Math.max(1, points[points.length - 1]?.at ?? 1);
  const x = (at: number) => left + (at / end) * plotW;
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const layers = ['sent', 'skipped', 'failed', 'unknown', 'pending'] as const;
  const parts: string[] = [];
  parts.push(
    valueLabels(left, [
      { y: y(0), text: '0' },
      { y: y(max), text: String(max) },
    ]),
  );
  parts.push(`<line class="grid" x1="${left}" x2="${W - PAD.right}" y1="${n(y(0))}" y2="${n(y(0))}"/>`);
  if (points.length > 0) {
    const below = points.map(() => 0);
    for (const layer of layers) {
      const top = points.map((p, i) => (below[i] ?? 0) + p[layer]);
      if (top.some((v, i) => v > (below[i] ?? 0))) {
        const upper = points.map((p, i) => `${n(x(p.at))},${n(y(top[i] ?? 0))}`);
        const lower = points.map((p, i) => `${n(x(p.at))},${n(y(below[i] ?? 0))}`).reverse();
        parts.push(`<polygon class="${layer}" points="${[...upper, ...lower].join(' ')}"/>`);
      }
      top.forEach((v, i) => {
        below[i] = v;
      });
    }
  }
  parts.push(axisLabel(left, H - 8, '0 s', 'start'));
  parts.push(axisLabel(W - PAD.right, H - 8, duration(end), 'end'));
  const last = points[points.length - 1];
  const summary = last
    ? `After ${duration(last.at)}: ${last.sent} sent, ${last.skipped} skipped, ${last.failed} failed, ` +
      `${last.unknown} unknown, ${last.pending} pending, of ${total}.`
    : `No delivery has finished yet, of ${total}.`;
  return frame(
    'sendout',
    'Deliveries by state since publishing',
    `${summary} The table below lists the figures over time.`,
    parts.join(''),
  );
}

/** Seconds as a short duration: 45 s, 12 min, 3 h 5 min, 2 d 4 h. */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
