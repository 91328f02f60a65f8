// The dashboard's one script (served as /admin/assets/admin.js): keeps send-out progress bars current.
// Without it the pages still show the state when loaded, and refresh themselves while a send-out runs.
(() => {
  const every = 1500;

  document.querySelectorAll('[data-progress-url]').forEach(watch);

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
