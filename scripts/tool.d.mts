/** Installs tools/<name> (npm ci) unless it is installed as its lockfile says; returns its folder. */
export function ensureTool(name: string): string;
/** The path of a command that tools/<name> installs, installing the tool first if needed. */
export function toolBin(name: string, bin: string): string;
