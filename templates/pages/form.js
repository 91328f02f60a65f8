// oneletter's subscription form, progressively enhanced: served as /form.js for the site's page.
// Without this script (or when the site's origin is not in ALLOWED_ORIGINS) the form posts as plain HTML.
(() => {
  // Where this script was loaded from: the service, whose files the ALTCHA widget comes from too.
  const base = new URL('.', document.currentScript?.src || location.href);
  if (document.querySelector('altcha-widget')) loadAltcha();

  const success = 'Almost done: check your inbox and open the link we sent to confirm.';
  const failure = 'That did not work. Please try again in a moment.';

  document.querySelectorAll('form[data-oneletter]').forEach(enhance);
  document.querySelectorAll('altcha-widget').forEach(sendWhenVerified);

  function enhance(form, n) {
    const status = document.createElement('p');
    status.className = 'oneletter-status';
    status.id = `oneletter-status-${n}`;
    status.setAttribute('role', 'status');
    form.append(status);
    const email = form.querySelector('[name="email"]');
    const button = form.querySelector('[type="submit"]');
    email?.setAttribute('aria-describedby', status.id);

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (button) button.disabled = true;
      status.textContent = '';
      status.removeAttribute('data-state');
      try {
        // A JSON body makes the browser ask first (CORS preflight): from an origin the service does not
        // allow, nothing is sent and the form falls back to a plain post below.
        const res = await fetch(form.action, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify(Object.fromEntries(new FormData(form))),
        });
        const body = await res.json();
        const ok = res.ok && body.status === 'pending';
        show(ok ? success : body.error?.message || failure, ok ? 'success' : body.error?.code || 'error');
        if (email) email.setAttribute('aria-invalid', String(body.error?.code === 'invalid_email'));
        if (ok) form.reset();
        else email?.focus();
        // A solution is taken once: the next attempt needs a new one.
        form.querySelector('altcha-widget')?.reset?.();
      } catch {
        form.submit();
      } finally {
        if (button) button.disabled = false;
      }
    });

    function show(text, state) {
      status.textContent = text;
      status.dataset.state = state;
    }
  }

  /**
   * A submit before the ALTCHA widget has its proof (it works for a moment once the field has focus) would
   * be held back by the browser without a word: say so, and send the form once the proof is there. Enter
   * in the field clicks the button too.
   */
  function sendWhenVerified(widget) {
    const form = widget.closest('form');
    const button = form?.querySelector('[type="submit"]');
    const note = Object.assign(document.createElement('p'), { className: 'oneletter-status' });
    button?.addEventListener('click', (event) => {
      if (typeof widget.getState !== 'function' || widget.getState() === 'verified') return;
      event.preventDefault();
      if (form.querySelector('[name="email"]')?.reportValidity() === false) return;
      note.setAttribute('role', 'status');
      note.textContent = 'One moment: checking that this is not a robot…';
      form.append(note);
      if (widget.getState() !== 'verifying') widget.verify();
      widget.addEventListener('statechange', function done({ detail }) {
        if (detail?.state === 'verifying') return;
        widget.removeEventListener('statechange', done);
        note.textContent = detail?.state === 'verified' ? '' : failure;
        if (detail?.state === 'verified') form.requestSubmit(button);
      });
    });
  }

  /**
   * ALTCHA on (the forms hold an <altcha-widget>): the widget, its styles and its proof-of-work worker, all
   * from the service. A worker must come from the page's own origin: on the site's pages, from a copy of
   * the service's file (a blob: URL; the site's CSP, if any, must allow worker-src blob:).
   */
  async function loadAltcha() {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = new URL('altcha/widget.css', base).href;
    document.head.append(css);
    const worker = new URL('altcha/worker.js', base);
    let workerUrl = worker.origin === location.origin ? worker.href : undefined;
    const createWorker = async () => {
      workerUrl ??= URL.createObjectURL(await (await fetch(worker)).blob());
      return new Worker(workerUrl);
    };
    await import(new URL('altcha/widget.js', base).href);
    globalThis.$altcha.algorithms.set('PBKDF2/SHA-256', createWorker);
  }
})();
