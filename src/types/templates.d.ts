// Template files imported as text by the Worker bundle (wrangler.toml [[rules]] type = "Text").
declare module '*.liquid' {
  const text: string;
  export default text;
}
declare module '*.css' {
  const text: string;
  export default text;
}
declare module '*.svg' {
  const text: string;
  export default text;
}
