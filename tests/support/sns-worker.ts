import type { SnsMessage } from '../../src/bounces/sns.js';
import { createSnsVerifier } from '../../src/bounces/sns.js';

/**
 * A Worker for tests/webhook.ses.workers.test.ts: runs the SNS signature check inside workerd. POST
 * `{certificate, message}`; the certificate is what "Amazon" serves at the message's SigningCertURL. A new
 * verifier for each request, as the app builds one per request; the answer counts the certificate fetches
 * this isolate made so far.
 */
let certificateFetches = 0;

export default {
  async fetch(request: Request): Promise<Response> {
    const { certificate, message } = (await request.json()) as { certificate: string; message: SnsMessage };
    const verify = createSnsVerifier({
      fetch: async () => {
        certificateFetches++;
        return new Response(certificate);
      },
    });
    try {
      await verify(message);
      return Response.json({ verified: true, certificateFetches });
    } catch (error) {
      return Response.json({ verified: false, reason: (error as Error).message, certificateFetches });
    }
  },
};
