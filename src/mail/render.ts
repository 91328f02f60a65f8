import type { Liquid } from 'liquidjs';

/** Template sources by path relative to templates/, e.g. `pages/confirm.liquid`. */
export type TemplateSources = Record<string, string>;

export interface RenderedEmail {
  subject: string;
  html: string;
  text: string;
}

/** Renders the pages and emails in templates/. LiquidJS needs no eval, so this also runs on Workers. */
export interface Renderer {
  page(name: string, vars: Record<string, unknown>): Promise<string>;
  email(name: string, vars: Record<string, unknown>): Promise<RenderedEmail>;
  /** A file served as is (the stylesheet). */
  asset(name: string): string | undefined;
}

/**
 * The templates are written in English (`lang="en"`), so their dates are too. Named, the locale also keeps
 * LiquidJS from asking ICU for the default one when it starts (`Intl.DateTimeFormat().resolvedOptions()`):
 * that one call reads some 4 MiB of ICU's data into memory and keeps ~8 MiB resident for the life of the
 * process, which renders its first email at the first send-out.
 */
const LIQUID_OPTIONS = { locale: 'en-US', cache: true, strictFilters: true } as const;

/**
 * Builds a renderer over template sources: HTML is escaped by default, text and subjects are not. LiquidJS
 * (a few MiB resident) is loaded by the first page or email, not by a process that renders none.
 */
export function createRenderer(sources: TemplateSources): Renderer {
  let engines: Promise<{ html: Liquid; plain: Liquid }> | undefined;
  const render = async (kind: 'html' | 'plain', file: string, vars: Record<string, unknown>) => {
    if (!(file in sources)) throw new Error(`Template ${file} is missing from templates/.`);
    engines ??= import('liquidjs').then(({ Liquid }) => ({
      html: new Liquid({ ...LIQUID_OPTIONS, templates: sources, outputEscape: 'escape' }),
      plain: new Liquid({ ...LIQUID_OPTIONS, templates: sources }),
    }));
    return (await engines)[kind].renderFile(file, vars) as Promise<string>;
  };
  return {
    page: (name, vars) => render('html', `pages/${name}.liquid`, vars),
    async email(name, vars) {
      const [subject, htmlBody, text] = await Promise.all([
        render('plain', `email/${name}.subject.liquid`, vars),
        render('html', `email/${name}.html.liquid`, vars),
        render('plain', `email/${name}.txt.liquid`, vars),
      ]);
      return { subject: subject.replace(/\s+/g, ' ').trim(), html: htmlBody, text };
    },
    asset: (name) => sources[name],
  };
}
