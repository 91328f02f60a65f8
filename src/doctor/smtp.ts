import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { maskEmail } from '../mail/mailer.js';
import type { Check } from './check.js';

/** A user name as shown: an address is masked like in logs. */
function shownUser(user: string): string {
  return user.includes('@') ? maskEmail(user) : user;
}

/** SMTP_URL with its password hidden: `smtp://user:***@host:587`. */
export function maskedSmtpUrl(smtpUrl: string): string {
  const url = new URL(smtpUrl);
  const user = url.username ? shownUser(decodeURIComponent(url.username)) : '';
  const auth = user ? `${user}${url.password ? ':***' : ''}@` : '';
  return `${url.protocol}//${auth}${url.host}`;
}

interface SmtpFailure {
  code?: string;
  responseCode?: number;
  response?: string;
  message?: string;
}

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/**
 * Connects to SMTP_URL as the service would (TLS for smtps://, STARTTLS when the server offers it), says
 * EHLO, logs in with the URL's credentials, and says goodbye. The password is never shown.
 */
export async function checkSmtp(smtpUrl: string, options: { timeoutMs?: number } = {}): Promise<Check> {
  const name = 'SMTP';
  const url = new URL(smtpUrl);
  const secure = url.protocol === 'smtps:';
  const port = Number(url.port) || (secure ? 465 : 587);
  const where = `${url.hostname}:${port}`;
  const shown = maskedSmtpUrl(smtpUrl);
  const user = decodeURIComponent(url.username);
  const timeout = options.timeoutMs ?? 10_000;
  const smtp = new SMTPConnection({
    host: url.hostname,
    port,
    secure,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  // Errors also come as events (a refused socket only as one); the steps below report them.
  smtp.on('error', () => {});
  let stage: 'connect' | 'auth' = 'connect';
  try {
    await new Promise<void>((resolve, reject) => {
      smtp.once('error', reject);
      smtp.connect((error) => (error ? reject(error) : resolve()));
    });
    const tls = smtp.secure ? (secure ? 'TLS (smtps)' : 'STARTTLS') : 'no TLS';
    stage = 'auth';
    if (!user) {
      return {
        name,
        verdict: 'ok',
        detail: `${shown} answered (${tls}); no credentials in SMTP_URL, so it must take mail from this host as is`,
      };
    }
    if (!smtp.allowsAuth) {
      return {
        name,
        verdict: 'fail',
        detail: `${shown} answered (${tls}) but offers no AUTH, so the credentials in SMTP_URL can't be used`,
        fix: smtp.secure
          ? 'use the submission port your provider names (587 with smtp://, or 465 with smtps://)'
          : 'servers offer AUTH only over TLS: use the port with STARTTLS (587) or smtps:// on 465',
      };
    }
    await new Promise<void>((resolve, reject) => {
      smtp.once('error', reject);
      smtp.login({ user, pass: decodeURIComponent(url.password) }, (error) =>
        error ? reject(error) : resolve(),
      );
    });
    if (!smtp.secure && !LOOPBACK.test(url.hostname)) {
      return {
        name,
        verdict: 'warn',
        detail: `${shown}: logged in as ${shownUser(user)}, but without TLS: the password crossed the network in clear`,
        fix: 'use a port with STARTTLS (587) or smtps:// on 465',
      };
    }
    return {
      name,
      verdict: 'ok',
      detail: `${shown} answered (${tls}) and accepted the login of ${shownUser(user)}`,
    };
  } catch (error) {
    return smtpFailure(error as SmtpFailure, { where, shown, stage, secure });
  } finally {
    smtp.close();
  }
}

function smtpFailure(
  e: SmtpFailure,
  at: { where: string; shown: string; stage: 'connect' | 'auth'; secure: boolean },
): Check {
  const name = 'SMTP';
  const said = (e.response ?? e.message ?? String(e)).replace(/\s+/g, ' ').slice(0, 200);
  if (e.code === 'EAUTH' || (at.stage === 'auth' && e.responseCode)) {
    return {
      name,
      verdict: 'fail',
      detail: `${at.shown}: authentication refused (${said})`,
      fix: 'check the user name and password in SMTP_URL (percent-encode @ : / and % inside them)',
    };
  }
  if (e.code === 'ETLS' || /certificate|ssl|tls|wrong version|handshake|EPROTO/i.test(e.message ?? '')) {
    return {
      name,
      verdict: 'fail',
      detail: `${at.where}: TLS failed (${said})`,
      fix: at.secure
        ? 'smtps:// is TLS from the first byte (port 465); for port 587 or 25 use smtp:// (STARTTLS). The certificate must be valid for the host name'
        : "the server's certificate must be valid for the host name in SMTP_URL (use the name the provider gives, not an IP)",
    };
  }
  if (e.code === 'ETIMEDOUT') {
    return {
      name,
      verdict: 'fail',
      detail: `cannot connect: no answer from ${at.where} (${said})`,
      fix: 'check the host and port in SMTP_URL, and that a firewall lets this host out (many clouds block port 25; use 587 or 465)',
    };
  }
  if (e.responseCode) {
    return {
      name,
      verdict: 'fail',
      detail: `${at.where} refused the session (${said})`,
      fix: 'check that this host may use the server (some only accept known IP addresses)',
    };
  }
  return {
    name,
    verdict: 'fail',
    detail: `cannot connect to ${at.where} (${said})`,
    fix: 'check the host and port in SMTP_URL (587 for smtp:// with STARTTLS, 465 for smtps://) and that the server is up',
  };
}
