import { describe, expect, it } from 'vitest';
import { ConfigError, PLACEHOLDER_FROM, parseConfig } from '../src/config.js';

/** The error parseConfig throws for an environment, or a failure when it throws none. */
function configError(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(env)}`);
}

describe('configuration from environment variables', () => {
  it('zero configuration works, with safe defaults', () => {
    const config = parseConfig({});
    expect(config).toMatchObject({
      production: false,
      port: 8787,
      publicUrl: 'http://localhost:8787',
      databaseUrl: undefined,
      dataDir: './data',
      smtpUrl: undefined,
      mailFrom: PLACEHOLDER_FROM,
      publisherTokenGenerated: true,
      allowedOrigins: [],
      trustProxy: false,
      confirmResendMs: 5 * 60_000,
      bodyLimitBytes: 16 * 1024,
    });
    expect(config.publisherToken.length).toBeGreaterThanOrEqual(16);
    expect(parseConfig({}).publisherToken).not.toBe(config.publisherToken);
  });

  it('empty variables count as unset', () => {
    expect(parseConfig({ PORT: '', DATABASE_URL: '', SMTP_URL: '', MAIL_FROM: '' })).toMatchObject({
      port: 8787,
      databaseUrl: undefined,
      smtpUrl: undefined,
      mailFrom: PLACEHOLDER_FROM,
    });
  });

  it('PUBLIC_URL follows PORT when unset, and loses its trailing slash when set', () => {
    expect(parseConfig({ PORT: '3000' }).publicUrl).toBe('http://localhost:3000');
    expect(parseConfig({ PUBLIC_URL: 'https://news.example.com/' }).publicUrl).toBe(
      'https://news.example.com',
    );
  });

  it('reads good values of every documented variable', () => {
    const config = parseConfig({
      NODE_ENV: 'production',
      PORT: '8080',
      PUBLIC_URL: 'https://news.example.com',
      DATABASE_URL: 'postgres://user:pass@db:5432/news',
      SMTP_URL: 'smtps://user:pass@mail.example.com:465',
      MAIL_FROM: 'Essays <essays@example.com>',
      PUBLISHER_TOKEN: 'a-long-enough-publisher-token',
      ALLOWED_ORIGINS: 'https://example.com, https://www.example.com/',
      TRUST_PROXY: 'true',
    });
    expect(config).toMatchObject({
      production: true,
      port: 8080,
      publicUrl: 'https://news.example.com',
      databaseUrl: 'postgres://user:pass@db:5432/news',
      smtpUrl: 'smtps://user:pass@mail.example.com:465',
      mailFrom: 'Essays <essays@example.com>',
      publisherToken: 'a-long-enough-publisher-token',
      publisherTokenGenerated: false,
      allowedOrigins: ['https://example.com', 'https://www.example.com'],
      trustProxy: true,
      warnings: [],
    });
    expect(parseConfig({ MAIL_FROM: 'essays@example.com' }).mailFrom).toBe('essays@example.com');
    expect(parseConfig({ DATABASE_URL: 'postgresql://localhost/news' }).databaseUrl).toBe(
      'postgresql://localhost/news',
    );
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['PUBLIC_URL', 'ftp://x'],
    ['PUBLIC_URL', 'news.example.com'],
    ['DATABASE_URL', 'mysql://user@host/db'],
    ['SMTP_URL', 'http://x'],
    ['ALLOWED_ORIGINS', 'notaurl'],
    ['ALLOWED_ORIGINS', 'https://example.com,ftp://files.example.com'],
    ['TRUST_PROXY', 'maybe'],
    ['MAIL_FROM', 'bad'],
    ['MAIL_FROM', 'Essays <not an address>'],
    ['PUBLISHER_TOKEN', 'short'],
    ['CONFIRM_RESEND_MINUTES', '-1'],
    ['CONFIRM_TOKEN_TTL_HOURS', '0'],
    ['BODY_LIMIT_BYTES', 'lots'],
    ['SES_SNS_TOPIC_ARN', 'ses-notifications'],
    ['SES_SNS_TOPIC_ARN', 'arn:aws:sqs:us-east-1:123456789012:queue'],
    ['SES_SNS_TOPIC_ARN', 'arn:aws:sns:us-east-1:123456789012:ok,arn:aws:sns:us-east-1:1234:short-account'],
  ])('%s=%s is refused with a ConfigError that names the variable', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.message).toContain(name);
    expect(error.message).toMatch(/expected/);
  });

  it('SES_SNS_TOPIC_ARN takes one or more topic ARNs; unset, the SES webhook is off', () => {
    expect(parseConfig({}).sesSnsTopicArns).toEqual([]);
    expect(
      parseConfig({
        SES_SNS_TOPIC_ARN:
          'arn:aws:sns:eu-west-1:123456789012:ses-events, arn:aws-cn:sns:cn-north-1:123456789012:ses_cn',
      }).sesSnsTopicArns,
    ).toEqual([
      'arn:aws:sns:eu-west-1:123456789012:ses-events',
      'arn:aws-cn:sns:cn-north-1:123456789012:ses_cn',
    ]);
  });

  it('every bad variable is named at once, so the operator fixes them in one go', () => {
    const error = configError({ PORT: 'abc', SMTP_URL: 'http://x', TRUST_PROXY: 'maybe' });
    expect(error.message).toContain('PORT');
    expect(error.message).toContain('SMTP_URL');
    expect(error.message).toContain('TRUST_PROXY');
  });

  it('refuses to start in production without PUBLISHER_TOKEN', () => {
    const error = configError({ NODE_ENV: 'production', PUBLIC_URL: 'https://news.example.com' });
    expect(error.message).toContain('PUBLISHER_TOKEN');
    expect(error.message).toContain('NODE_ENV=production');
  });

  it('warns when PUBLIC_URL is not https and when MAIL_FROM is missing, and otherwise starts', () => {
    const config = parseConfig({ PUBLIC_URL: 'http://news.example.com' });
    expect(config.publicUrl).toBe('http://news.example.com');
    expect(config.warnings).toHaveLength(2);
    expect(config.warnings.find((w) => w.includes('PUBLIC_URL'))).toMatch(/https/);
    expect(config.warnings.find((w) => w.includes('MAIL_FROM'))).toContain(PLACEHOLDER_FROM);

    const quiet = parseConfig({ PUBLIC_URL: 'https://news.example.com', MAIL_FROM: 'essays@example.com' });
    expect(quiet.warnings).toEqual([]);
  });
});

describe('configuration errors and secrets', () => {
  it('a refused secret is not echoed in the error (start-up errors end up in logs)', () => {
    const token = configError({ PUBLISHER_TOKEN: 'tiny-secret' });
    expect(token.message).toContain('PUBLISHER_TOKEN');
    expect(token.message).not.toContain('tiny-secret');

    const database = configError({ DATABASE_URL: 'mysql://admin:hunter2@db.example.com/news' });
    expect(database.message).toContain('DATABASE_URL');
    expect(database.message).toContain('db.example.com');
    expect(database.message).not.toContain('hunter2');

    const smtp = configError({ SMTP_URL: 'https://mailer:s3cret@smtp.example.com' });
    expect(smtp.message).toContain('SMTP_URL');
    expect(smtp.message).not.toContain('s3cret');
  });
});
