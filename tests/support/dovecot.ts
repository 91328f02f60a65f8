import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';

/** Debian's dovecot-imapd (.ci/run installs it). */
export const DOVECOT = '/usr/sbin/dovecot';

/** A real IMAP server (Dovecot) of the test's own: one user, plain-text login on 127.0.0.1, maildirs in a temp dir. */
export interface TestMailbox {
  /** BOUNCE_MAILBOX_URL for its INBOX: `imap://bounces:…@127.0.0.1:<port>/INBOX`. */
  url: string;
  port: number;
  user: string;
  password: string;
  /** Puts a message in a folder as a mail server's delivery would (IMAP APPEND). */
  deliver(raw: string | Buffer, folder?: string): Promise<void>;
  /** The raw messages in a folder, oldest first (none when the folder does not exist). */
  messages(folder?: string): Promise<string[]>;
  /** The flags of each message in a folder, oldest first. */
  flags(folder?: string): Promise<string[][]>;
  close(): Promise<void>;
}

/**
 * Starts Dovecot as an unprivileged process with a configuration of its own in a temp dir: no system service,
 * nothing outside the dir. Run as root (CI in a container), it runs as `nobody`; otherwise as the user
 * running the tests.
 */
export async function startTestMailbox(): Promise<TestMailbox> {
  if (!existsSync(DOVECOT)) {
    throw new Error(
      "Dovecot is missing: apt-get install -y --no-install-recommends dovecot-imapd (.ci/run installs it, and doesn't start its service).",
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'oneletter-dovecot-'));
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? Number(execFileSync('id', ['-u', 'nobody']).toString().trim()) : userInfo().uid;
  const gid = asRoot ? Number(execFileSync('id', ['-g', 'nobody']).toString().trim()) : userInfo().gid;
  const user = asRoot ? 'nobody' : userInfo().username;
  const group = execFileSync('id', ['-gn', user]).toString().trim();
  const port = await freePort();
  const login = { user: 'bounces', password: 'mailbox-test-password' };
  await mkdir(join(dir, 'mail'));
  await writeFile(join(dir, 'passwd'), `${login.user}:{PLAIN}${login.password}:${uid}:${gid}::${dir}/home\n`);
  await writeFile(
    join(dir, 'dovecot.conf'),
    `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = ${user}
default_internal_group = ${group}
default_login_user = ${user}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u ${dir}/passwd
}
mail_location = maildir:${dir}/mail/%u
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`,
  );
  if (asRoot) chownTree(dir, uid, gid);
  const child: ChildProcess = spawn(DOVECOT, ['-F', '-c', join(dir, 'dovecot.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(asRoot ? { uid, gid } : {}),
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForGreeting(port, () => (child.exitCode !== null ? stderr || 'dovecot exited' : undefined));

  const client = async () => {
    const imap = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      auth: { user: login.user, pass: login.password },
      logger: false,
      disableAutoIdle: true,
    });
    imap.on('error', () => {});
    await imap.connect();
    return imap;
  };
  const withFolder = async <T>(folder: string, read: (imap: ImapFlow) => Promise<T>, none: T) => {
    const imap = await client();
    try {
      if (!(await imap.list()).some((box) => box.path === folder)) return none;
      const lock = await imap.getMailboxLock(folder);
      try {
        return await read(imap);
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }
  };

  return {
    url: `imap://${login.user}:${login.password}@127.0.0.1:${port}/INBOX`,
    port,
    user: login.user,
    password: login.password,
    async deliver(raw, folder = 'INBOX') {
      const imap = await client();
      try {
        await imap.append(folder, raw);
      } finally {
        await imap.logout();
      }
    },
    messages: (folder = 'INBOX') =>
      withFolder(
        folder,
        async (imap) => {
          const found = await imap.fetchAll('1:*', { source: true });
          return found.map((m) => m.source?.toString('utf8') ?? '');
        },
        [] as string[],
      ),
    flags: (folder = 'INBOX') =>
      withFolder(
        folder,
        async (imap) => {
          const found = await imap.fetchAll('1:*', { flags: true });
          return found.map((m) => [...(m.flags ?? [])].sort());
        },
        [] as string[][],
      ),
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A port nothing listens on now (Dovecot's listener can't be given port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as import('node:net').AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once the server greets on the port; rejects with what it said if it stopped instead. */
async function waitForGreeting(port: number, failed: () => string | undefined): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    const reason = failed();
    if (reason) throw new Error(`Dovecot did not start: ${reason}`);
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(2000, () => socket.destroy());
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('* OK'));
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (greeted) return;
    if (Date.now() > until) throw new Error('Dovecot did not greet on its port within 20 seconds');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Hands the dir and what was written in it to the user Dovecot runs as. */
function chownTree(dir: string, uid: number, gid: number): void {
  for (const path of [dir, ...['mail', 'passwd', 'dovecot.conf'].map((name) => join(dir, name))]) {
    chownSync(path, uid, gid);
  }
}
