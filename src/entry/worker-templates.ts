// The files of templates/, bundled into the Worker as text (wrangler.toml [[rules]] type = "Text"):
// a Worker has no filesystem. tests/worker-templates.test.ts checks this list matches the folder.
import confirmHtml from '../../templates/email/confirm.html.liquid';
import confirmSubject from '../../templates/email/confirm.subject.liquid';
import confirmTxt from '../../templates/email/confirm.txt.liquid';
import essayHtml from '../../templates/email/essay.html.liquid';
import essaySubject from '../../templates/email/essay.subject.liquid';
import essayTxt from '../../templates/email/essay.txt.liquid';
// @ts-expect-error: a .js file bundled as text by wrangler's rules, not a module TypeScript can read
import adminJs from '../../templates/pages/admin/admin.js';
import adminErase from '../../templates/pages/admin/erase.liquid';
import adminError from '../../templates/pages/admin/error.liquid';
import adminImport from '../../templates/pages/admin/import.liquid';
import adminLayout from '../../templates/pages/admin/layout.liquid';
import adminOutbox from '../../templates/pages/admin/outbox.liquid';
import adminOutboxEmail from '../../templates/pages/admin/outbox-email.liquid';
import adminOverview from '../../templates/pages/admin/overview.liquid';
import adminPreview from '../../templates/pages/admin/preview.liquid';
import adminProgress from '../../templates/pages/admin/progress.liquid';
import adminPublish from '../../templates/pages/admin/publish.liquid';
import adminSendout from '../../templates/pages/admin/sendout.liquid';
import adminSignIn from '../../templates/pages/admin/sign-in.liquid';
import adminSubscriber from '../../templates/pages/admin/subscriber.liquid';
import adminSubscribers from '../../templates/pages/admin/subscribers.liquid';
import checkInbox from '../../templates/pages/check-inbox.liquid';
import confirmPage from '../../templates/pages/confirm.liquid';
import confirmedPage from '../../templates/pages/confirmed.liquid';
import errorPage from '../../templates/pages/error.liquid';
import favicon from '../../templates/pages/favicon.svg';
// @ts-expect-error: a .js file bundled as text by wrangler's rules, not a module TypeScript can read
import formJs from '../../templates/pages/form.js';
import formPage from '../../templates/pages/form.liquid';
import homePage from '../../templates/pages/home.liquid';
import layout from '../../templates/pages/layout.liquid';
import snippet from '../../templates/pages/snippet.liquid';
import style from '../../templates/pages/style.css';
import subscribeForm from '../../templates/pages/subscribe-form.liquid';
import unsubscribePage from '../../templates/pages/unsubscribe.liquid';
import unsubscribedPage from '../../templates/pages/unsubscribed.liquid';
import type { TemplateSources } from '../mail/render.js';

/** Every template, by its path under templates/. */
export const workerTemplates: TemplateSources = {
  'email/confirm.html.liquid': confirmHtml,
  'email/confirm.subject.liquid': confirmSubject,
  'email/confirm.txt.liquid': confirmTxt,
  'email/essay.html.liquid': essayHtml,
  'email/essay.subject.liquid': essaySubject,
  'email/essay.txt.liquid': essayTxt,
  'pages/admin/admin.js': adminJs,
  'pages/admin/erase.liquid': adminErase,
  'pages/admin/error.liquid': adminError,
  'pages/admin/import.liquid': adminImport,
  'pages/admin/layout.liquid': adminLayout,
  'pages/admin/outbox-email.liquid': adminOutboxEmail,
  'pages/admin/outbox.liquid': adminOutbox,
  'pages/admin/overview.liquid': adminOverview,
  'pages/admin/preview.liquid': adminPreview,
  'pages/admin/progress.liquid': adminProgress,
  'pages/admin/publish.liquid': adminPublish,
  'pages/admin/sendout.liquid': adminSendout,
  'pages/admin/sign-in.liquid': adminSignIn,
  'pages/admin/subscriber.liquid': adminSubscriber,
  'pages/admin/subscribers.liquid': adminSubscribers,
  'pages/check-inbox.liquid': checkInbox,
  'pages/confirm.liquid': confirmPage,
  'pages/confirmed.liquid': confirmedPage,
  'pages/error.liquid': errorPage,
  'pages/favicon.svg': favicon,
  'pages/form.js': formJs,
  'pages/form.liquid': formPage,
  'pages/home.liquid': homePage,
  'pages/layout.liquid': layout,
  'pages/snippet.liquid': snippet,
  'pages/style.css': style,
  'pages/subscribe-form.liquid': subscribeForm,
  'pages/unsubscribe.liquid': unsubscribePage,
  'pages/unsubscribed.liquid': unsubscribedPage,
};
