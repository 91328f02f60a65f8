import { execFileSync } from 'node:child_process';
import { createSign, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A stand-in for Amazon SNS in tests: a real RSA key with a self-signed X.509 certificate (made by the openssl
 * CLI), served from a local HTTP server, and messages signed exactly as SNS signs them. The app fetches
 * `https://sns.<region>.amazonaws.com/…` addresses as in production; the fetch the test gives it sends those
 * (and only those) to the local server, so the app's own host checks stay in force.
 */

export const REGION = 'us-east-1';
export const TOPIC_ARN = `arn:aws:sns:${REGION}:123456789012:ses-notifications`;
export const SNS_ORIGIN = `https://sns.${REGION}.amazonaws.com`;
/** The certificate address SNS puts in its messages (AWS names them by a hash). */
export const CERT_PATH = '/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem';
/** The same certificate at a second address, for tests that count fetches from a cold start. */
export const SECOND_CERT_PATH = '/SimpleNotificationService-5ec0d5ec0d5ec0d5ec0d5ec0d5ec0d5e.pem';
/** A certificate of a different key, also "on Amazon's host": a message signed with our key fails against it. */
export const OTHER_CERT_PATH = '/SimpleNotificationService-0000000000000000000000000000other.pem';
/** An elliptic-curve certificate (SNS signs with RSA only) and a PEM whose content is not a certificate. */
export const EC_CERT_PATH = '/SimpleNotificationService-ec.pem';
export const GARBAGE_CERT_PATH = '/SimpleNotificationService-garbage.pem';

export interface SnsFixture {
  privateKeyPem: string;
  certificatePem: string;
  /** Every request the local "Amazon" received: method and path with query. */
  requests: string[];
  /** The fetch to give the app. Counts calls to hosts other than Amazon's SNS (they throw). */
  fetch: typeof fetch;
  foreignFetches: string[];
  /** What the next request for a certificate answers, once (e.g. 500 or 404). */
  failNext?: number;
  close(): Promise<void>;
}

function makeCertificate(
  dir: string,
  name: string,
  keyType: 'rsa' | 'ec' = 'rsa',
): { key: string; cert: string } {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  const newKey =
    keyType === 'rsa'
      ? ['-newkey', 'rsa:2048']
      : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const args = ['req', '-x509', ...newKey, '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2'];
  try {
    execFileSync('openssl', [...args, '-subj', `/CN=sns.${REGION}.amazonaws.com`], { stdio: 'ignore' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new Error(
      'The openssl command is not installed; the SES webhook tests make their certificates with it. ' +
        'Install it with `apt-get install -y openssl` (.ci/run does).',
    );
  }
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

/**
 * The stand-in's certificates, made once per process: the service keeps fetched certificates in one cache per
 * process (src/bounces/sns.ts), and test files run one after another in a worker process, so every stand-in
 * must serve the same certificate at the same address, as Amazon does.
 */
let made: { main: Pem; other: Pem; ec: Pem } | undefined;
type Pem = ReturnType<typeof makeCertificate>;
function certificates(): { main: Pem; other: Pem; ec: Pem } {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), 'oneletter-sns-'));
  try {
    made = {
      main: makeCertificate(dir, 'sns'),
      other: makeCertificate(dir, 'other'),
      ec: makeCertificate(dir, 'ec', 'ec'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return made;
}

/**
 * A certificate address never used before in this process, served with our key's certificate (`main`) or
 * another key's (`other`): for tests that count fetches, which the process-wide cache of earlier test files
 * would otherwise have answered.
 */
export function freshCertPath(kind: 'main' | 'other' = 'main'): string {
  const path = `/SimpleNotificationService-${randomBytes(16).toString('hex')}.pem`;
  freshPaths.set(path, kind);
  return path;
}
const freshPaths = new Map<string, 'main' | 'other'>();

/** Starts the local "Amazon": certificates and the subscription confirmation link. */
export async function startFakeSns(): Promise<SnsFixture> {
  const { main, other, ec } = certificates();

  const fixture: SnsFixture = {
    privateKeyPem: main.key,
    certificatePem: main.cert,
    requests: [],
    foreignFetches: [],
    fetch: async () => {
      throw new Error('not started');
    },
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    fixture.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (fixture.failNext) {
      res.writeHead(fixture.failNext).end('no');
      fixture.failNext = undefined;
      return;
    }
    const fresh = freshPaths.get(url.pathname);
    if (
      url.pathname === CERT_PATH ||
      url.pathname === SECOND_CERT_PATH ||
      url.pathname === OTHER_CERT_PATH ||
      fresh
    ) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' });
      res.end(url.pathname === OTHER_CERT_PATH || fresh === 'other' ? other.cert : main.cert);
      return;
    }
    if (url.pathname === EC_CERT_PATH || url.pathname === GARBAGE_CERT_PATH) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' });
      res.end(
        url.pathname === EC_CERT_PATH
          ? ec.cert
          : '-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAAAAAA\n-----END CERTIFICATE-----\n',
      );
      return;
    }
    if (url.pathname === '/' && url.searchParams.get('Action') === 'ConfirmSubscription') {
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        '<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>' +
          `${url.searchParams.get('TopicArn')}:${randomUUID()}</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>`,
      );
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const local = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  fixture.fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== 'https:' || !/^sns\.[a-z0-9-]+\.amazonaws\.com$/.test(url.hostname)) {
      fixture.foreignFetches.push(url.href);
      throw new Error(`the test's fetch only reaches Amazon SNS, not ${url.href}`);
    }
    return fetch(`${local}${url.pathname}${url.search}`, init);
  };
  fixture.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return fixture;
}

/** A key that has no certificate on "Amazon's" host. */
export function strangerKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export type SnsFields = Record<string, string>;

/** The string SNS signs, written out here from AWS's documentation (not from the code under test). */
function stringToSign(m: SnsFields): string {
  const keys =
    m.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  return keys
    .filter((k) => m[k] !== undefined)
    .map((k) => `${k}\n${m[k]}\n`)
    .join('');
}

/** Signs an SNS message with SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA). */
export function sign(m: SnsFields, keyPem: string, version: '1' | '2' = '1'): SnsFields {
  const signed = { ...m, SignatureVersion: version };
  const signer = createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256');
  signer.update(stringToSign(signed), 'utf8');
  return { ...signed, Signature: signer.sign(keyPem, 'base64') };
}

/** An SNS Notification envelope as SNS posts it (before signing), carrying `message`. */
export function notification(message: unknown, overrides: SnsFields = {}): SnsFields {
  const id = randomUUID();
  return {
    Type: 'Notification',
    MessageId: id,
    TopicArn: TOPIC_ARN,
    Message: typeof message === 'string' ? message : JSON.stringify(message),
    Timestamp: new Date().toISOString(),
    SigningCertURL: `${SNS_ORIGIN}${CERT_PATH}`,
    UnsubscribeURL: `${SNS_ORIGIN}/?Action=Unsubscribe&SubscriptionArn=${TOPIC_ARN}:${id}`,
    ...overrides,
  };
}

/** A SubscriptionConfirmation as SNS posts it (before signing). */
export function subscriptionConfirmation(overrides: SnsFields = {}): SnsFields {
  const token = `2336412f37fb687f5d51e6e2425f004aed${randomUUID().replace(/-/g, '')}`;
  return {
    Type: 'SubscriptionConfirmation',
    MessageId: randomUUID(),
    Token: token,
    TopicArn: TOPIC_ARN,
    Message: `You have chosen to subscribe to the topic ${TOPIC_ARN}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
    SubscribeURL: `${SNS_ORIGIN}/?Action=ConfirmSubscription&TopicArn=${TOPIC_ARN}&Token=${token}`,
    Timestamp: new Date().toISOString(),
    SigningCertURL: `${SNS_ORIGIN}${CERT_PATH}`,
    ...overrides,
  };
}

/** The request SNS makes: a text/plain JSON body and its x-amz-sns-* headers. */
export function snsRequest(m: SnsFields, body = JSON.stringify(m, null, 2)): RequestInit {
  return {
    method: 'POST',
    headers: {
      'content-type': 'text/plain; charset=UTF-8',
      'user-agent': 'Amazon Simple Notification Service Agent',
      'x-amz-sns-message-type': m.Type ?? '',
      'x-amz-sns-message-id': m.MessageId ?? '',
      'x-amz-sns-topic-arn': m.TopicArn ?? '',
    },
    body,
  };
}

/** The common `mail` object of an SES notification (AWS's documented sample, trimmed of headers). */
function mail(destination: string[]) {
  return {
    timestamp: '2016-01-27T14:59:38.237Z',
    messageId: '00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000',
    source: 'essays@example.test',
    sourceArn: 'arn:aws:ses:us-east-1:123456789012:identity/example.test',
    sourceIp: '127.0.3.0',
    sendingAccountId: '123456789012',
    destination,
    headersTruncated: false,
    commonHeaders: { from: ['Essays <essays@example.test>'], to: destination, subject: 'An essay' },
  };
}

/** An SES bounce notification, shaped like AWS's documented example. */
export function sesBounce(
  emails: string[],
  bounceType: 'Permanent' | 'Transient' | 'Undetermined' = 'Permanent',
  style: 'notificationType' | 'eventType' = 'notificationType',
) {
  return {
    [style]: 'Bounce',
    bounce: {
      bounceType,
      bounceSubType: bounceType === 'Permanent' ? 'General' : 'MailboxFull',
      bouncedRecipients: emails.map((emailAddress) => ({
        emailAddress,
        action: 'failed',
        status: '5.1.1',
        diagnosticCode: `smtp; 550 5.1.1 <${emailAddress}>... User unknown`,
      })),
      timestamp: '2016-01-27T14:59:38.237Z',
      feedbackId: '00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000',
      remoteMtaIp: '127.0.2.0',
      reportingMTA: 'dsn; a27-23.smtp-out.us-west-2.amazonses.com',
    },
    mail: mail(emails),
  };
}

/** An SES complaint notification, shaped like AWS's documented example. */
export function sesComplaint(emails: string[], feedbackType = 'abuse') {
  return {
    notificationType: 'Complaint',
    complaint: {
      userAgent: 'ExampleCorp Feedback Loop (V0.01)',
      complainedRecipients: emails.map((emailAddress) => ({ emailAddress })),
      complaintFeedbackType: feedbackType,
      arrivalDate: '2016-01-27T14:59:38.237Z',
      timestamp: '2016-01-27T14:59:38.237Z',
      feedbackId: '000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000',
    },
    mail: mail(emails),
  };
}

/** An SES delivery notification (ignored by the service). */
export function sesDelivery(emails: string[]) {
  return {
    notificationType: 'Delivery',
    delivery: {
      timestamp: '2016-01-27T14:59:38.237Z',
      processingTimeMillis: 546,
      recipients: emails,
      smtpResponse: '250 ok:  Message 64111812 accepted',
      reportingMTA: 'a8-70.smtp-out.amazonses.com',
      remoteMtaIp: '127.0.2.0',
    },
    mail: mail(emails),
  };
}
