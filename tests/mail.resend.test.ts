import type { IncomingMessage, Server } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { createResendMailer } from '../src/mail/resend.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { drainWith, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLIC_URL } from './support/service.js';

interface ApiEmail {
  key: string;
  body: {
    from: string;
    to: string[];
    subject: string;
    html: string;
    text: string;
    headers?: Record<string, string>;
  };
}

/**
 * A stand-in for Resend's documented POST /emails, on a local port: it checks the key, keeps idempotency
 * keys as the real one does (the same key sends once), and can be told to fail.
 */
function startFakeResend() {
  const sent: ApiEmail[] = [];
  const keys = new Set<string>();
  const state = { requests: 0, failNext: [] as number[], dropNext: 0, refuse: new Set<string>() };
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    state.requests++;
    let raw = '';
    for await (const chunk of req) raw += chunk;
    if (req.headers.authorization !== 'Bearer re_test_key_123') {
      res.writeHead(401).end('{"message":"API key is invalid"}');
      return;
    }
    const key = String(req.headers['idempotency-key'] ?? '');
    const body = JSON.parse(raw) as ApiEmail['body'];
    const status = state.failNext.shift();
    if (status) {
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"message":"try later"}');
      return;
    }
    if (body.to.some((to) => state.refuse.has(to))) {
      res.writeHead(422, { 'content-type': 'application/json' }).end('{"message":"invalid `to` field"}');
      return;
    }
    if (!keys.has(key)) {
      keys.add(key);
      sent.push({ key, body });
    }
    if (state.dropNext > 0) {
      // Took the email, then the answer is lost on the way back.
      state.dropNext--;
      req.socket.destroy();
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ id: `id-${sent.length}` }));
  });
  return { server, sent, state };
}

const emails = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}@example.org`);

describe('sending through the Resend HTTP API', () => {
  let s: TestService;
  let api: ReturnType<typeof startFakeResend>;
  let baseUrl: string;

  beforeAll(async () => {
    s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
    api = startFakeResend();
    await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', () => resolve()));
    baseUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => api?.server.close(resolve));
    await s?.close();
  });
  beforeEach(() => {
    api.sent.length = 0;
    api.state.failNext = [];
    api.state.dropNext = 0;
  });

  const dispatcherWith = (apiKey = 're_test_key_123') =>
    createDispatcher({
      db: s.database.db,
      mailer: createResendMailer({ apiKey, baseUrl, timeoutMs: 2000 }),
      renderer: createRenderer(loadTemplates()),
      config: { ...s.config, retryBaseMs: 0 },
      log: silentLogger,
    });

  it('mails the confirmation, and the essay letters with their one-click unsubscribe headers', async () => {
    expect((await s.subscribeJson('api-reader@example.org', 'Ann')).status).toBe(202);
    const dispatcher = dispatcherWith();
    await drainWith(dispatcher);
    expect(api.sent).toHaveLength(1);
    const token = confirmTokenIn(api.sent[0]?.body.text);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);

    await seedSubscribers(s.database.db, 'confirmed', emails('api-bulk', 5));
    expect(
      (await s.publish({ slug: 'via-api', title: 'Via the API', url: 'https://example.org/api' })).status,
    ).toBe(202);
    await drainWith(dispatcher);
    await dispatcher.stop();
    const letters = api.sent.slice(1);
    expect(letters).toHaveLength(6);
    expect(new Set(letters.map((l) => l.body.to[0])).size).toBe(6);
    for (const letter of letters) {
      expect(letter.body.subject).toBe('Via the API');
      expect(letter.body.html).toContain('https://example.org/api');
      expect(letter.body.headers?.['List-Unsubscribe']).toMatch(
        new RegExp(`^<${PUBLIC_URL}/unsubscribe/[\\w-]{43}>$`),
      );
      expect(letter.body.headers?.['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click');
      expect(letter.body.text).toContain(letter.body.headers?.['List-Unsubscribe']?.slice(1, -1));
    }
    // Each letter has its own idempotency key, the same whenever that letter is tried again.
    expect(new Set(letters.map((l) => l.key)).size).toBe(6);
  });

  it('retries 429 and 5xx answers, and a lost answer sends no second letter (idempotency key)', async () => {
    await seedSubscribers(s.database.db, 'confirmed', emails('api-retry', 3));
    api.state.failNext = [429, 500, 503];
    api.state.dropNext = 1;
    expect(
      (await s.publish({ slug: 'retried', title: 'Retried', url: 'https://example.org/r' })).status,
    ).toBe(202);
    const dispatcher = dispatcherWith();
    for (let round = 0; round < 20; round++) await drainWith(dispatcher);
    await dispatcher.stop();
    const progress = (await (
      await s.app.request('/api/essays/retried', {
        headers: { authorization: `Bearer ${s.config.publisherToken}` },
      })
    ).json()) as { sendout: { status: string; sent: number; total: number } };
    expect(progress.sendout.status).toBe('done');
    expect(progress.sendout.sent).toBe(progress.sendout.total);
    const recipients = api.sent.map((l) => l.body.to[0]);
    expect(new Set(recipients).size).toBe(recipients.length);
    expect(recipients).toHaveLength(progress.sendout.total);
  });

  it('fails a letter the API refuses (422) at once, and a wrong key sends nothing', async () => {
    api.state.refuse.add('api-refused1@example.org');
    await seedSubscribers(s.database.db, 'confirmed', emails('api-refused', 1));
    expect(
      (await s.publish({ slug: 'refused', title: 'Refused', url: 'https://example.org/x' })).status,
    ).toBe(202);
    const wrong = dispatcherWith('re_wrong_key_000');
    await wrong.runOnce();
    await wrong.stop();
    expect(api.sent).toHaveLength(0);

    const dispatcher = dispatcherWith();
    for (let round = 0; round < 5; round++) await drainWith(dispatcher);
    await dispatcher.stop();
    const res = await s.app.request('/api/essays/refused', {
      headers: { authorization: `Bearer ${s.config.publisherToken}` },
    });
    const { sendout } = (await res.json()) as { sendout: { failed: number; status: string } };
    expect(sendout.status).toBe('done');
    expect(sendout.failed).toBe(1);
  });
});
