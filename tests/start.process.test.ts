import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProcessDatabase } from './support/process.js';
import { createProcessDatabase, killServiceProcesses, startServiceProcess } from './support/process.js';

/** Issue 23: what `npm start` says while it starts, and when it can't. */
describe('starting the service', { timeout: 120_000 }, () => {
  let database: ProcessDatabase | undefined;
  afterEach(async (context) => {
    await killServiceProcesses(context);
    await database?.destroy();
  });

  it('says a port in use at once, in words, before setting anything up', async () => {
    database = await createProcessDatabase();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const service = await startServiceProcess({ ...database.env, PORT: String(port) });
      const exit = await service.exited;
      expect(exit.code).toBe(1);
      expect(service.output.stderr).toContain(`Port ${port} is already in use`);
      expect(service.output.stderr).not.toMatch(/uncaught|EADDRINUSE/);
      expect(service.output.stdout).not.toMatch(/embedded database|listening/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('says what it is doing while it sets up the embedded database', async () => {
    database = await createProcessDatabase('pglite');
    const service = await startServiceProcess(database.env);
    await service.ready();
    expect(service.output.stdout).toMatch(/setting up the embedded database in \S+ \(the first start only/);
    await service.stop();
    const again = await startServiceProcess(database.env);
    await again.ready();
    expect(again.output.stdout).toContain('opening the embedded database in');
    expect(again.output.stdout).not.toContain('setting up');
  });
});
