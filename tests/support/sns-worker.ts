import type { SnsMessage } from '../../src/webhooks/sns.js';
import { createSnsVerifier } from '../../src/webhooks/sns.js';

/**
 * A Worker for tests/webhook.ses.workers.test.ts: runs the SNS signature check inside workerd. POST
 * `{certificate, message}`; the certificate is what "Amazon" serves at the message's SigningCertURL.
 */
export default {
  async fetch(request: Request): Promise<Response> {
    const { certificate, message } = (await request.json()) as { certificate: string; message: SnsMessage };
    const verify = createSnsVerifier({ fetch: async () => new Response(certificate) });
    try {
      await verify(message);
      return Response.json({ verified: true });
    } catch (error) {
      return Response.json({ verified: false, reason: (error as Error).message });
    }
  },
};
