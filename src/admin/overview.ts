import type { Hono } from 'hono';
import type { Deps } from '../deps.js';
import { stats } from '../list/stats.js';
import { growthChart } from './charts.js';
import type { AdminEnv } from './page.js';
import { adminPage } from './page.js';

/** Days of growth the overview shows. */
export const GROWTH_DAYS = 90;
const LATEST_SENDOUTS = 10;

/** The percentage of a send-out that is finished (sent, skipped, failed or unknown), 0–100. */
export function percentDone(s: { total: number; pending: number }): number {
  if (s.total === 0) return 100;
  return Math.floor(((s.total - s.pending) / s.total) * 100);
}

/** /admin: the list by status, its growth per day, and the latest send-outs with their progress. */
export function overviewRoutes(app: Hono<AdminEnv>, deps: Deps): void {
  app.get('/admin', async (c) => {
    const figures = await stats(deps.database.db, { days: GROWTH_DAYS, sendouts: LATEST_SENDOUTS });
    const sendouts = figures.sendouts.map((s) => ({
      ...s,
      sendout: { ...s.sendout, done: s.sendout.total - s.sendout.pending },
      percent: percentDone(s.sendout),
      // Gmail and Yahoo ask bulk senders to keep complaints under 0.3 % of the letters delivered.
      complaint_rate:
        s.sendout.sent > 0 && s.reports.complained > 0
          ? ((s.reports.complained / s.sendout.sent) * 100).toFixed(2)
          : undefined,
    }));
    const growth = figures.growth.map((d) => ({
      day: d.day,
      confirmed: d.confirmed,
      unsubscribed: d.unsubscribed,
      bounced: d.bounced,
      complained: d.complained,
    }));
    return adminPage(c, 'overview', {
      title: 'Overview',
      subscribers: figures.subscribers,
      complained: figures.complained,
      growth_chart: growthChart(growth),
      // The table lists only days with something in them: 90 rows of zeros help no one.
      growth_days: growth
        .filter((d) => d.confirmed + d.unsubscribed + d.bounced + d.complained > 0)
        .reverse(),
      growth_totals: growth.reduce(
        (t, d) => ({
          confirmed: t.confirmed + d.confirmed,
          unsubscribed: t.unsubscribed + d.unsubscribed,
          bounced: t.bounced + d.bounced,
          complained: t.complained + d.complained,
        }),
        { confirmed: 0, unsubscribed: 0, bounced: 0, complained: 0 },
      ),
      days: GROWTH_DAYS,
      sendouts,
      sources: figures.sources,
      sending: sendouts.some((s) => s.sendout.status === 'sending'),
    });
  });
}
