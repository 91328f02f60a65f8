import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmationEmail } from '../src/mail/messages.js';
import { createOutboxMailer, createOutboxView } from '../src/mail/outbox.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { signIn } from './support/admin.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL } from './support/service.js';

/** Issue 23: without SMTP_URL, the dashboard shows the outbox, where a newcomer finds the confirmation link. */
describe('the dashboard outbox', () => {
  let s: TestService;
  let without: TestService;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oneletter-outbox-'));
    [s, without] = await Promise.all([
      createTestService({}, { outbox: createOutboxView(dir) }),
      createTestService(),
    ]);
    const outbox = createOutboxMailer({ dir });
    const renderer = createRenderer(loadTemplates());
    for (const [i, name] of ['Ann', 'Bo'].entries()) {
      const email = await confirmationEmail(
        s.config,
        renderer,
        { email: `${name}@example.org`, name },
        `tok${i}`.repeat(8),
      );
      await outbox.send({ ...email, subject: `${email.subject} (${name})` });
      await new Promise((resolve) => setTimeout(resolve, 5)); // names carry the time to the millisecond
    }
    await outbox.close();
  });
  afterAll(async () => {
    await Promise.all([s?.close(), without?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the emails newest first, each opening on its text and the links in it', async () => {
    const admin = await signIn(s);
    const page = await (await admin.get('/admin/outbox')).text();
    expect(page).toContain('href="/admin/outbox"');
    const bo = page.indexOf('(Bo)');
    const ann = page.indexOf('(Ann)');
    expect(bo).toBeGreaterThan(0);
    expect(ann).toBeGreaterThan(bo);
    expect(page).toContain('to Bo@example.org');
    const name = /href="\/admin\/outbox\/([^"]+\.eml)"/.exec(page)?.[1];
    const email = await (await admin.get(`/admin/outbox/${name}`)).text();
    expect(email).toContain(`<a href="${PUBLIC_URL}/confirm/${'tok1'.repeat(8)}">`);
    expect(email).toContain('Hello Bo,');
  });

  it('reads nothing but the outbox files: other names are a 404', async () => {
    const admin = await signIn(s);
    for (const name of ['..%2Fsecret.eml', 'nothing-here.eml', '.env', 'x%00.eml'])
      expect((await admin.get(`/admin/outbox/${name}`)).status, name).toBe(404);
  });

  it('is not there when emails go to a mail server', async () => {
    const admin = await signIn(without);
    expect((await admin.get('/admin/outbox')).status).toBe(404);
    expect(await (await admin.get('/admin')).text()).not.toContain('href="/admin/outbox"');
  });

  it('needs a session', async () => {
    const res = await s.app.request('/admin/outbox');
    expect(res.status).toBe(303);
  });
});
