import type { Readable, Writable } from 'node:stream';
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

  function release(pooled: PooledConnection, healthy: boolean): void {
    pooled.sent++;
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
      smtp.send(
        { from: email.envelope.from, to: [email.envelope.to] },
        bodySource(email, probe, (smtp as unknown as { _socket?: Writable })._socket),
        (error) => finish(error),
      );
    });
  }

  return {
    description: `SMTP server ${url.hostname}:${port} (${max} connections)`,
    concurrency: max,
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
 * A message that tells when SMTPConnection starts sending it (the server had said 354). SMTPConnection
 * pipes anything with a pipe() method into its dot-stuffing stream once DATA is accepted; this one
 * writes the whole message at once. A Readable would do the same with a stream, a pipe and their
 * listeners set up for every message, and cost a tenth of a dispatcher's CPU time per message.
 */
function bodySource(email: RawEmail, probe: DeliveryProbe, socket: Writable | undefined): Readable {
  const raw = email.raw;
  const source = {
    pipe(target: Writable): Writable {
      probe.started = true;
      // The body and the final dot leave the dot-stuffing stream one tick apart: with the connection's
      // socket corked until the tick after, they go out in one write instead of two. (nodemailer keeps
      // its socket private; without it, nothing is corked and nothing else changes.)
      socket?.cork();
      const wire = socket && onTheWire(raw, email.dataSafe);
      if (socket && wire) {
        // Already as DATA carries it: straight to the socket, and the stream adds only the final
        // CRLF.CRLF. Its byte-by-byte scan was the largest part of a dispatcher's own work per letter.
        socket.write(wire);
        target.end();
      } else {
        target.end(raw);
      }
      if (socket) process.nextTick(() => socket.uncork());
      return target;
    },
  };
  return source as unknown as Readable;
}

const LF_DOT = Buffer.from('\n.');
const DOT = Buffer.from('.');
/** A CR or LF that is not part of a CRLF pair. */
const BARE_LINE_END = /\r(?!\n)|(?<!\r)\n/;

/**
 * A message as the DATA command carries it (RFC 5321 4.5.2), less its last CRLF, which the end of data
 * (CRLF.CRLF) brings: every line starting with a dot gets one more. Undefined for a message with a bare
 * CR or LF, which nodemailer's stream turns into CRLF (its way is then the one taken). `dataSafe`: the
 * message is known to need neither (see RawEmail), and is not searched.
 */
export function onTheWire(raw: Buffer, dataSafe = false): Buffer | undefined {
  const end =
    raw.length >= 2 && raw[raw.length - 2] === 0x0d && raw[raw.length - 1] === 0x0a
      ? raw.length - 2
      : raw.length;
  if (dataSafe) return raw.subarray(0, end);
  if (BARE_LINE_END.test(raw.toString('latin1'))) return undefined;
  const parts: Buffer[] = [];
  let from = 0;
  if (raw[0] === 0x2e) parts.push(DOT);
  for (let at = raw.indexOf(LF_DOT); at !== -1 && at < end; at = raw.indexOf(LF_DOT, at + 2)) {
    parts.push(raw.subarray(from, at + 1), DOT);
    from = at + 1;
  }
  if (parts.length === 0) return raw.subarray(0, end);
  parts.push(raw.subarray(from, end));
  return Buffer.concat(parts);
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
