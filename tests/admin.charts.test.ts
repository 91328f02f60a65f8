import { describe, expect, it } from 'vitest';
import { growthChart, growthScale, sendoutChart } from '../src/admin/charts.js';

/** The value axis's labels of a chart: their text, centre and right edge (text-anchor end). */
function valueLabels(svg: string): { text: string; x: number; y: number }[] {
  return [
    ...svg.matchAll(/<text class="axis" x="([\d.]+)" y="([\d.]+)" dy="0.35em" text-anchor="end">([^<]+)</g),
  ].map((m) => ({ x: Number(m[1]), y: Number(m[2]), text: m[3] as string }));
}

const day = (i: number, confirmed: number, unsubscribed: number, bounced = 0) => ({
  day: `2026-01-${String(i + 1).padStart(2, '0')}`,
  confirmed,
  unsubscribed,
  bounced,
});

/** Phone font size in the chart's units (style.css), and a digit's width in a system font at most. */
const EM = 24;
const DIGIT = 0.66 * EM;

describe('the dashboard charts', () => {
  it('growth: "+100", "0" and "−5" all shown, a line apart, none clipped at the left edge', () => {
    const svg = growthChart([day(0, 100, 0), day(1, 3, 5), day(2, 0, 0)]);
    const labels = valueLabels(svg);
    expect(labels.map((l) => l.text)).toEqual(['0', '+100', '−50']);
    const ys = labels.map((l) => l.y).sort((a, b) => a - b);
    for (let i = 1; i < ys.length; i++)
      expect((ys[i] as number) - (ys[i - 1] as number)).toBeGreaterThanOrEqual(EM * 1.25);
    for (const l of labels) expect(l.x - l.text.length * DIGIT).toBeGreaterThanOrEqual(0);
  });

  it('growth: one scale on both sides of the zero line, which always leaves room for its labels', () => {
    for (const [up, down] of [
      [100, 5],
      [5, 100],
      [1, 1],
      [1000, 1],
      [0, 7],
      [3, 0],
    ] as const) {
      const scale = growthScale(up, down);
      expect(scale.up).toBeGreaterThanOrEqual(Math.max(1, up));
      expect(scale.down).toBeGreaterThanOrEqual(down);
      if (down > 0) expect(Math.min(scale.up, scale.down) / (scale.up + scale.down)).toBeGreaterThan(0.18);
    }
  });

  it('a send-out of a million: its label fits left of the plot', () => {
    const svg = sendoutChart(
      [{ at: 10, sent: 1_000_000, skipped: 0, failed: 0, unknown: 0, pending: 0 }],
      1_000_000,
    );
    const labels = valueLabels(svg);
    expect(labels.map((l) => l.text)).toEqual(['0', '1000000']);
    for (const l of labels) expect(l.x - l.text.length * DIGIT).toBeGreaterThanOrEqual(0);
  });
});
