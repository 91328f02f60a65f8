import { Readable } from 'node:stream';
import MailComposer from 'nodemailer/lib/mail-composer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { DkimSigner } from './dkim.js';
import type { Mailer, OutgoingEmail, RawEmail, SendOutcome } from './mailer.js';

export interface SmtpOptions {
  /** smtp://user:pass@host:port or smtps://… */
  url: string;
  /** Connections kept open to the server. */
  connections: number;
  /** Signs every message (DKIM) before it goes out. */
  sign?: DkimSigner;
}

/** Messages sent over one connection before it is replaced (some servers cap a session). */
const MESSAGES_PER_CONNECTION = 1000;

/**
 * Learns whether a message's body started flowing: SMTPConnection reads the message only after the
 * server said 354 to DATA. If the connection breaks after that, the server may have the whole message.
 */
interface DeliveryProbe {
  started: boolean;
}

interface PooledConnection {
  smtp: SMTPConnection;
  sent: number;
  alive: boolean;
}

/**
 * Sends through an SMTP server over a pool of connections (nodemailer's SMTPConnection: TLS, STARTTLS,
 * AUTH and PIPELINING) and classifies every failure. Messages go out as assembled: a raw letter as is,
 * any other email composed once by nodemailer.
 */
export function createSmtpMailer(options: SmtpOptions): Mailer {
  const url = new URL(options.url);
  const secure = url.protocol === 'smtps:';
  const port = Number(url.port) || (secure ? 465 : 587);
  const auth = url.username
    ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
    : undefined;
  const max = Math.max(1, options.connections);
  const idle: PooledConnection[] = [];
  const waiting: ((c: PooledConnection | undefined) => void)[] = [];
  const all = new Set<PooledConnection>();
  let opening = 0;
  let closed = false;

  function open(): Promise<PooledConnection> {
    const smtp = new SMTPConnection({
      host: url.hostname,
      port,
      secure,
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 120_000,
    });
    const pooled: PooledConnection = { smtp, sent: 0, alive: true };
    // Idle connections time out or are closed by the server: they leave the pool, nothing else happens.
    const gone = () => {
      pooled.alive = false;
      all.delete(pooled);
      const at = idle.indexOf(pooled);
      if (at >= 0) idle.splice(at, 1);
    };
    smtp.on('error', gone);
    smtp.on('end', gone);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        gone();
        smtp.close();
        reject(error);
      };
      const ready = () => {
        if (settled) return;
        settled = true;
        smtp.off('error', fail);
        resolve(pooled);
      };
      // A connection can fail before connect() calls back (a refused socket is only an 'error' event).
      smtp.once('error', fail);
      smtp.connect((error) => {
        if (error) return fail(error);
        if (!auth) return ready();
        smtp.login(auth, (loginError) => (loginError ? fail(loginError) : ready()));
      });
    });
  }

  /** Opens a connection into the pool unless one is idle, or all are open (one will come back idle). */
  async function ready(): Promise<void> {
    if (idle.some((c) => c.alive) || all.size + opening >= max) return;
    opening++;
    try {
      const pooled = await open();
      all.add(pooled);
      release(pooled, true, false);
    } finally {
      opening--;
    }
  }

  async function acquire(): Promise<PooledConnection> {
    for (;;) {
      const ready = idle.pop();
      if (ready?.alive) return ready;
      if (ready) continue;
      if (all.size + opening < max) {
        opening++;
        try {
          const pooled = await open();
          all.add(pooled);
          return pooled;
        } finally {
          opening--;
        }
      }
      const handed = await new Promise<PooledConnection | undefined>((resolve) => waiting.push(resolve));
      if (handed?.alive) return handed;
    }
  }

  function release(pooled: PooledConnection, healthy: boolean, used = true): void {
    if (used) pooled.sent++;
    if (!healthy || !pooled.alive || closed || pooled.sent >= MESSAGES_PER_CONNECTION) {
      pooled.alive = false;
      all.delete(pooled);
      if (healthy) pooled.smtp.quit();
      else pooled.smtp.close();
      // A waiter may open a new connection in the freed slot.
      waiting.shift()?.(undefined);
      return;
    }
    const waiter = waiting.shift();
    if (waiter) waiter(pooled);
    else idle.push(pooled);
  }

  async function transmit(pooled: PooledConnection, email: RawEmail, probe: DeliveryProbe): Promise<void> {
    const { smtp } = pooled;
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (error?: unknown) => {
        if (done) return;
        done = true;
        smtp.off('error', finish);
        smtp.off('end', onEnd);
        if (error) reject(error);
        else resolve();
      };
      const onEnd = () =>
        finish(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }));
      smtp.once('error', finish);
      smtp.once('end', onEnd);
      smtp.send({ from: email.envelope.from, to: [email.envelope.to] }, bodySource(email, probe), (error) =>
        finish(error),
      );
    });
  }

  return {
    description: `SMTP server ${url.hostname}:${port} (${max} connections)`,
    concurrency: max,
    ready,
    async send(email: OutgoingEmail | RawEmail): Promise<SendOutcome> {
      const probe: DeliveryProbe = { started: false };
      let pooled: PooledConnection | undefined;
      try {
        const composed = 'raw' in email ? email : await compose(email);
        const raw = options.sign ? await options.sign(composed) : composed;
        pooled = await acquire();
        await transmit(pooled, raw, probe);
        release(pooled, true);
        return { status: 'sent' };
      } catch (error) {
        if (pooled) release(pooled, false);
        return classifySmtpError(error, probe);
      }
    },
    async close() {
      closed = true;
      for (const pooled of all) {
        pooled.alive = false;
        pooled.smtp.quit();
      }
      all.clear();
      idle.length = 0;
      for (const waiter of waiting.splice(0)) waiter(undefined);
    },
  };
}

/**
 * The message as a stream that tells when SMTPConnection starts reading it: it reads the message only after
 * the server said 354 to DATA, so from then on, if the connection breaks, the server may have it all.
 */
function bodySource(email: RawEmail, probe: DeliveryProbe): Readable {
  return new Readable({
    read() {
      probe.started = true;
      this.push(email.raw);
      this.push(null);
    },
  });
}

/** Composes an email once (nodemailer's MIME composer) into a raw message and its envelope. */
export async function compose(email: OutgoingEmail): Promise<RawEmail> {
  const node = new MailComposer({ ...email, messageId: email.messageId && `<${email.messageId}>` }).compile();
  const envelope = node.getEnvelope();
  const raw = await node.build();
  return {
    envelope: { from: envelope.from || '', to: envelope.to[0] ?? email.to },
    raw,
    messageId: email.messageId,
    subject: email.subject,
  };
}

interface SmtpError {
  code?: string;
  responseCode?: number;
  command?: string;
  response?: string;
  message?: string;
}

/** Turns an SMTP failure into what the dispatcher does next: retry, fail, or never resend. */
export function classifySmtpError(error: unknown, probe?: DeliveryProbe): SendOutcome {
  const e = (error ?? {}) as SmtpError;
  const reply = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const message = (e.response ?? e.message ?? String(error)).slice(0, 500);
  // An explicit 4xx/5xx reply means the server did not take the message.
  if (reply !== undefined && reply >= 500 && reply !== 503) {
    return { status: 'permanent', error: message, bounce: e.command === 'RCPT TO' };
  }
  if (reply !== undefined && reply >= 400) return { status: 'temporary', error: message };
  // No reply: if the body had started flowing, the server may have the message. Never send it again.
  if (probe?.started ?? true) return { status: 'unknown', error: message };
  switch (e.code) {
    case 'ECONNECTION':
    case 'ESOCKET':
    case 'ETIMEDOUT':
    case 'EDNS':
    case 'ETLS':
    case 'EPROTOCOL':
    case 'EMAXLIMIT':
    case 'EPROXY':
    case 'EAUTH':
    case 'ECONNREFUSED':
      return { status: 'temporary', error: message };
    default:
      return { status: 'permanent', error: message, bounce: false };
  }
}
