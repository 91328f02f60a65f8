import type { Context } from 'hono';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import type { Logger } from './log.js';
import type { Mailer } from './mail/mailer.js';
import type { OutboxView } from './mail/outbox.js';
import type { Renderer } from './mail/render.js';

/** Everything the HTTP app needs, built once by an entry file (or per request on Workers) and by tests. */
export interface Deps {
  config: Config;
  database: Database;
  renderer: Renderer;
  log: Logger;
  /** Tells a dispatcher in this process that new work was queued (confirmations, a send-out). */
  kick?: () => void;
  /** The API reference page's files (Swagger UI's bundle and stylesheet), served under /docs/; absent: none. */
  docsAssets?: (name: DocsAsset) => Promise<Uint8Array | undefined>;
  /** The ALTCHA widget's files (npm `altcha`), served under /altcha/ when ALTCHA_HMAC_KEY is set; absent: none. */
  altchaWidget?: (file: AltchaWidgetFile) => Promise<Uint8Array | undefined>;
  /** Outgoing HTTP (SNS signing certificates, subscription confirmations); the global fetch when absent. */
  fetch?: typeof fetch;
  /** The .eml outbox read back (emails go to files, no SMTP_URL): the dashboard lists it. Node only. */
  outbox?: OutboxView;
  /** The configured mailer, for the dashboard's test of a letter; absent: the dashboard sends nothing itself. */
  mailer?: Mailer;
  /** The address of the peer that sent the request (the runtime knows it: a socket, a platform header). */
  peerAddress?: (c: Context) => string | undefined;
}

/** The files of the API reference page at /docs. */
export type DocsAsset = 'swagger-ui-bundle.js' | 'swagger-ui.css';

/** The files of the ALTCHA widget the service serves: the widget, its styles, its proof-of-work worker. */
export type AltchaWidgetFile = 'widget.js' | 'widget.css' | 'worker.js';

/** An error as a page shows it. */
export interface ErrorView {
  status: number;
  title: string;
  message: string;
}

export type AppEnv = {
  Variables: {
    deps: Deps;
    /**
     * The error page of the part of the service answering (the dashboard's, under /admin), set by its
     * middleware; unset: the readers' page. The one error handler (src/http/errors.ts) renders with it.
     */
    errorPage?: (error: ErrorView) => Promise<string>;
  };
};
