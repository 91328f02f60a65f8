// The dashboard's one script (served as /admin/assets/admin.js): keeps send-out progress current.
// Without it the pages still show the state when loaded, and refresh themselves while a send-out runs.
(() => {
  const every = 1500;

  // A send-out's page: the whole page is fetched again and its live part shown whole, so that the bar, the
  // tiles, the chart and the list of failed deliveries always come from one and the same moment.
  const live = document.querySelector('[data-live-page]');
  if (live) followPage(live);
  document.querySelectorAll('[data-progress-url]').forEach((box) => {
    if (!box.closest('[data-live-page]')) watch(box);
  });

  function followPage(region) {
    const tick = async () => {
      try {
        const res = await fetch(location.href, {
          headers: { Accept: 'text/html' },
          credentials: 'same-origin',
        });
        if (res.ok) {
          const page = new DOMParser().parseFromString(await res.text(), 'text/html');
          const fresh = page.querySelector('[data-live-page]');
          if (fresh) {
            region.replaceChildren(...fresh.childNodes);
            region.dataset.status = fresh.dataset.status;
            if (fresh.dataset.status !== 'sending') return;
          }
        }
      } catch {
        // A missed poll is retried on the next tick.
      }
      setTimeout(tick, every);
    };
    if (region.dataset.status === 'sending') setTimeout(tick, every);
  }

  // A progress bar elsewhere (the overview): its figures from the progress JSON.
  function watch(box) {
    const bar = box.querySelector('progress');
    const field = (name) => box.querySelector(`[data-field="${name}"]`);
    const show = (p) => {
      if (bar) {
        bar.max = Math.max(1, p.total);
        bar.value = p.total === 0 ? 1 : p.done;
        bar.textContent = `${p.percent} %`;
      }
      for (const name of ['percent', 'done', 'total', 'sent', 'failed', 'unknown', 'status']) {
        const el = field(name);
        if (el && el.textContent !== String(p[name])) el.textContent = String(p[name]);
      }
      box.dataset.status = p.status;
    };
    const tick = async () => {
      try {
        const res = await fetch(box.dataset.progressUrl, {
          headers: { Accept: 'application/json' },
          credentials: 'same-origin',
        });
        if (res.ok) {
          const progress = await res.json();
          show(progress);
          if (progress.status === 'done') return;
        }
      } catch {
        // A missed poll is retried on the next tick.
      }
      setTimeout(tick, every);
    };
    if (field('status')?.textContent === 'sending') setTimeout(tick, every);
  }
})();
