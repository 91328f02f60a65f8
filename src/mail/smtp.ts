import type { Readable } from 'node:stream';
import type { SendMailOptions, Transporter } from 'nodemailer';
import nodemailer from 'nodemailer';
import type { Mailer, OutgoingEmail, SendOutcome } from './mailer.js';

export interface SmtpOptions {
  /** smtp://user:pass@host:port or smtps://… */
  url: string;
  /** Pooled connections kept open to the server. */
  connections: number;
}

/** Remembers the message streams nodemailer opened, to learn whether the body started flowing. */
interface DeliveryProbe {
  streams: Readable[];
}

/** Sends through an SMTP server over pooled connections and classifies every failure. */
export function createSmtpMailer(options: SmtpOptions): Mailer {
  const url = new URL(options.url);
  const secure = url.protocol === 'smtps:';
  const transport = nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port) || (secure ? 465 : 587),
    secure,
    auth: url.username
      ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
      : undefined,
    pool: true,
    maxConnections: options.connections,
    maxMessages: 1000,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 120_000,
  });
  installDeliveryProbe(transport);
  return {
    description: `SMTP server ${url.hostname}:${url.port || (secure ? 465 : 587)} (${options.connections} connections)`,
    concurrency: options.connections,
    async send(email: OutgoingEmail): Promise<SendOutcome> {
      const probe: DeliveryProbe = { streams: [] };
      try {
        await transport.sendMail({
          ...email,
          messageId: email.messageId && `<${email.messageId}>`,
          deliveryProbe: probe,
        } as SendMailOptions);
        return { status: 'sent' };
      } catch (error) {
        return classifySmtpError(error, probe);
      }
    },
    async close() {
      transport.close();
    },
  };
}

/**
 * nodemailer reads a message's body only after the server said 354 to DATA. Keeping the streams it
 * opens tells, when the connection breaks, whether the server may already have the whole message.
 */
function installDeliveryProbe(transport: Transporter): void {
  transport.use('stream', (mail, done) => {
    const probe = (mail.data as { deliveryProbe?: DeliveryProbe }).deliveryProbe;
    if (probe) {
      const original = mail.message.createReadStream.bind(mail.message);
      mail.message.createReadStream = ((...args: Parameters<typeof original>) => {
        const stream = original(...args);
        probe.streams.push(stream);
        return stream;
      }) as typeof original;
    }
    done();
  });
}

interface SmtpError {
  code?: string;
  responseCode?: number;
  command?: string;
  response?: string;
  message?: string;
}

/** Turns a nodemailer failure into what the dispatcher does next: retry, fail, or never resend. */
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
  if (probe?.streams.some((s) => s.readableDidRead) ?? true) return { status: 'unknown', error: message };
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
      return { status: 'temporary', error: message };
    default:
      return { status: 'permanent', error: message, bounce: false };
  }
}
