import type { AddressInfo } from 'node:net';
import type { ParsedMail } from 'mailparser';
import { simpleParser } from 'mailparser';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { SMTPServer } from 'smtp-server';

export interface ReceivedEmail {
  /** The envelope recipient, lower-cased. */
  to: string;
  /** The envelope sender (MAIL FROM), as given: where bounces go. */
  from: string;
  parsed: ParsedMail;
  raw: string;
  /** When its data had arrived (Date.now()). */
  receivedAt: number;
}

/** One SMTP transaction as the server saw it: MAIL FROM, then each RCPT TO (answered or refused). */
export interface SmtpTransaction {
  /** The connection it ran on (smtp-server's session id). */
  session: string;
  /** When MAIL FROM arrived (Date.now()): the moment the letter's transaction began. */
  startedAt: number;
  /** Every RCPT TO of the transaction, lower-cased, with when it arrived. */
  recipients: { address: string; at: number }[];
}

/** Decides the server's answer; return an error (with responseCode) to refuse. */
export type SmtpHook = (recipient: string, session: SMTPServerSession) => SmtpReply | undefined;
export type SmtpReply = { code: number; message: string } | 'drop';

export interface SmtpSink {
  url: string;
  port: number;
  received: ReceivedEmail[];
  /** Every transaction begun, in the order MAIL FROM arrived: who reached the server, and when. */
  transactions: SmtpTransaction[];
  /** Answer for RCPT TO (per recipient). */
  onRecipient?: SmtpHook;
  /** Answer after the message data arrived (per recipient of the message). `drop` destroys the connection. */
  onMessage?: SmtpHook;
  /** Wait this long after each message's data before answering: a slow server, to stretch a send-out. */
  delayMs?: number;
  /** Resolves once `count` emails have arrived in all. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedEmail[]>;
  to(address: string): ReceivedEmail[];
  close(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Require AUTH (PLAIN or LOGIN, over plain text) with these credentials; others get 535. */
  auth?: { user: string; pass: string };
  /** Offer STARTTLS, with smtp-server's built-in self-signed certificate (which clients refuse). */
  starttls?: boolean;
}

/** A real SMTP server on a free port that keeps every email it accepts, parsed with mailparser. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const { auth } = options;
  const waiters: { count: number; resolve: () => void }[] = [];
  /** Each connection's transaction under way, by session id. */
  const current = new Map<string, SmtpTransaction>();
  const sink: SmtpSink = {
    url: '',
    port: 0,
    received: [],
    transactions: [],
    async waitFor(count, timeoutMs = 20_000) {
      if (sink.received.length < count) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () =>
              reject(
                new Error(`expected ${count} emails, got ${sink.received.length} after ${timeoutMs} ms`),
              ),
            timeoutMs,
          );
          waiters.push({
            count,
            resolve: () => {
              clearTimeout(timer);
              resolve();
            },
          });
        });
      }
      return sink.received;
    },
    to: (address) => sink.received.filter((m) => m.to === address.toLowerCase()),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const server = new SMTPServer({
    authOptional: !auth,
    allowInsecureAuth: true,
    disabledCommands: [...(options.starttls ? [] : ['STARTTLS']), ...(auth ? [] : ['AUTH'])],
    logger: false,
    onAuth(login, _session, callback) {
      if (login.username === auth?.user && login.password === auth?.pass)
        return callback(null, { user: login.username });
      callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    size: 10 * 1024 * 1024,
    onMailFrom(_address, session, callback) {
      const transaction = { session: session.id, startedAt: Date.now(), recipients: [] };
      current.set(session.id, transaction);
      sink.transactions.push(transaction);
      callback();
    },
    onRcptTo(address, session, callback) {
      current.get(session.id)?.recipients.push({ address: address.address.toLowerCase(), at: Date.now() });
      const reply = sink.onRecipient?.(address.address.toLowerCase(), session);
      if (reply === 'drop') return destroy(session);
      if (reply) return callback(Object.assign(new Error(reply.message), { responseCode: reply.code }));
      callback();
    },
    onData(stream: SMTPServerDataStream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', async () => {
        if (sink.delayMs) await new Promise((resolve) => setTimeout(resolve, sink.delayMs));
        const recipients = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
        for (const recipient of recipients) {
          const reply = sink.onMessage?.(recipient, session);
          if (reply === 'drop') {
            // The whole message arrived, then the connection breaks before the answer: SMTP may have it.
            await store(session, recipients, chunks);
            return destroy(session);
          }
          if (reply) return callback(Object.assign(new Error(reply.message), { responseCode: reply.code }));
        }
        await store(session, recipients, chunks);
        callback();
      });
    },
  });

  // A client that vanishes mid-transaction (a process killed on purpose) is reported as an 'error' event,
  // which would crash the test process without a listener. The sink keeps what arrived whole and goes on.
  server.on('error', () => {});

  const sockets = new Map<string, import('node:net').Socket>();
  // smtp-server keeps its connections to itself; remember the sockets to be able to drop one.
  (server as unknown as { server: import('node:net').Server }).server.on('connection', (socket) => {
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    sockets.set(key, socket);
    socket.on('close', () => sockets.delete(key));
  });

  function destroy(session: SMTPServerSession) {
    sockets.get(`${session.remoteAddress}:${session.remotePort}`)?.destroy();
  }

  async function store(session: SMTPServerSession, recipients: string[], chunks: Buffer[]) {
    const receivedAt = Date.now();
    const raw = Buffer.concat(chunks).toString('utf8');
    const parsed = await simpleParser(raw);
    const mailFrom = session.envelope.mailFrom;
    const from = mailFrom ? mailFrom.address : '';
    for (const to of recipients) sink.received.push({ to, from, parsed, raw, receivedAt });
    for (const waiter of [...waiters]) {
      if (sink.received.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = (
    server as unknown as { server: import('node:net').Server }
  ).server.address() as AddressInfo;
  sink.port = port;
  sink.url = `smtp://127.0.0.1:${port}`;
  return sink;
}
