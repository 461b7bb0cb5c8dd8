/**
 * The console page (console/index.html, bundled by Bun) as ordinary routes of the gate's table,
 * so the page and its assets get what every other answer gets (the Host allow-list, the Origin
 * policy, the access log) plus a page CSP, frame-ancestors and X-Frame-Options. Bun's own
 * HTML-import routes are served before `fetch` and cannot carry headers (oven-sh/bun#16873).
 *
 * Where the bundle comes from:
 * - the compiled binary (and `bun build`) embeds it: the HTMLBundle lists its files;
 * - a checkout has only the HTML's path: `Bun.build` bundles it on the first request for the
 *   page, once per process, so starting the server costs nothing extra.
 */
import type { HTMLBundle } from "bun";
import { basename, isAbsolute, join } from "node:path";
import type { HttpRoute } from "./routes.ts";

/**
 * Only the page's own files: scripts, styles and sockets from this origin, images from this
 * origin or inline data (the favicon is `data:,`); nothing may frame the page, and a form can
 * post only back here.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // CSP Level 3: 'self' also matches ws: and wss: on this host and port (the console's socket).
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  // For browsers that predate frame-ancestors.
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  // Not no-referrer: under it Chromium sends `Origin: null` with a form post, which the Origin
  // policy refuses (403). same-origin sends nothing to any other origin, and the CSP lets the page
  // reach no other origin anyway.
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** A file of the bundle, ready to send. */
interface Asset {
  readonly body: Uint8Array;
  readonly type: string;
  /** A quoted entity tag. */
  readonly etag: string;
}

/** What the route table needs before anything is read: the paths, and a way to load the bytes. */
interface Bundle {
  /** Route path → whether its name carries a content hash (then it may be cached for good). */
  readonly paths: ReadonlyMap<string, boolean>;
  load(): Promise<ReadonlyMap<string, Asset>>;
}

/** Once loaded, kept for the life of the process; a failed load is retried on the next request. */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= load().catch((error: unknown) => {
      pending = undefined;
      throw error;
    }));
}

/** The HTML document is `/`; every other file is served under its own name at the root. */
function routePathOf(file: string, isPage: boolean): string {
  return isPage ? "/" : `/${basename(file)}`;
}

type BundledFile = NonNullable<HTMLBundle["files"]>[number];

/** The binary's embedded files (`/$bunfs/…`), or `bun build` output (paths relative to the bundle). */
function prebuiltBundle(files: readonly BundledFile[]): Bundle {
  const located = files.map((file) => ({
    file,
    route: routePathOf(file.path, file.loader === "html"),
    where: isAbsolute(file.path) ? file.path : join(import.meta.dir, file.path),
  }));
  return {
    paths: new Map(located.map(({ route, file }) => [route, file.loader !== "html"])),
    load: once(async () => {
      const entries = await Promise.all(
        located.map(async ({ file, route, where }): Promise<[string, Asset]> => [
          route,
          { body: await Bun.file(where).bytes(), type: file.headers["content-type"], etag: `"${file.headers.etag}"` },
        ]),
      );
      return new Map(entries);
    }),
  };
}

/** A checkout: bundled by `Bun.build` with fixed names (`index.js`, `index.css`) so the routes are known now. */
function checkoutBundle(index: string): Bundle {
  const stem = basename(index).replace(/\.html?$/, "");
  const paths = new Map([
    ["/", false],
    [`/${stem}.js`, false],
    [`/${stem}.css`, false],
  ]);
  return {
    paths,
    load: once(async () => {
      const built = await Bun.build({
        entrypoints: [index],
        minify: true,
        naming: { entry: "[name].[ext]", chunk: "[name].[ext]", asset: "[name].[ext]" },
      });
      if (!built.success) throw new Error(`the console page did not bundle: ${built.logs.map((log) => log.message).join("; ")}`);
      const assets = new Map<string, Asset>();
      for (const output of built.outputs) {
        const route = routePathOf(output.path, output.type.startsWith("text/html"));
        // A file the route table does not know would be a broken page: say so instead of a 404.
        if (!paths.has(route)) throw new Error(`the console bundle has an unexpected file ${basename(output.path)}`);
        assets.set(route, { body: new Uint8Array(await output.arrayBuffer()), type: output.type, etag: `"${output.hash}"` });
      }
      return assets;
    }),
  };
}

function bundleOf(page: HTMLBundle): Bundle {
  return page.files !== undefined && page.files.length > 0 ? prebuiltBundle(page.files) : checkoutBundle(page.index);
}

function headersFor(asset: Asset, immutable: boolean): Headers {
  return new Headers({
    ...SECURITY_HEADERS,
    "content-type": asset.type,
    etag: asset.etag,
    // Hashed names never change content; the page itself and fixed names are revalidated (ETag).
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
  });
}

/**
 * A form submitted before the page's script ran (its controls start disabled, so only a page
 * tampered with can) lands here: the body is never read, and the browser goes back to the page.
 */
function seeConsole(): Response {
  return new Response(null, { status: 303, headers: { ...SECURITY_HEADERS, location: "/", "cache-control": "no-store" } });
}

function serveAsset(request: Request, asset: Asset, immutable: boolean): Response {
  const headers = headersFor(asset, immutable);
  if (request.headers.get("if-none-match") === asset.etag) return new Response(null, { status: 304, headers });
  return new Response(asset.body, { status: 200, headers });
}

/**
 * The page's assets again under `/auth/console/`: the gate's own prefix, which it answers on every
 * host, including one the routes file gives to a service (where `/index.js` is the service's).
 */
export const CONSOLE_ASSET_PREFIX = "/auth/console";

/**
 * The page with its relative asset references pointing under CONSOLE_ASSET_PREFIX, so it works at
 * `/auth/login` on any host, and its sign-in forms posting back to the page's own URL.
 */
function rootedPage(asset: Asset): Asset {
  const text = new TextDecoder()
    .decode(asset.body)
    .replace(/(src|href)="\.\//g, `$1="${CONSOLE_ASSET_PREFIX}/`)
    // Without script, a sign-in form then posts to this very URL, `?rd=` included, and lands there.
    .replace(/ action="\/auth\/login"/g, "");
  return { ...asset, body: new TextEncoder().encode(text), etag: asset.etag.replace(/"$/, '-rooted"') };
}

export interface Console {
  /** Public routes for `/` and each file of the console bundle. */
  readonly routes: HttpRoute[];
  /** The same page for another path (the sign-in page at `/auth/login`). */
  readonly servePage: (request: Request) => Promise<Response>;
}

export function createConsole(page: HTMLBundle): Console {
  const bundle = bundleOf(page);
  const rooted = once(async () => {
    const asset = (await bundle.load()).get("/");
    if (asset === undefined) throw new Error("the console bundle has no page");
    return rootedPage(asset);
  });
  const prefixed = [...bundle.paths]
    .filter(([path]) => path !== "/")
    .map(([path, immutable]): HttpRoute => ({
      kind: "http",
      path: CONSOLE_ASSET_PREFIX + path,
      methods: ["GET", "HEAD"],
      scope: null,
      handle: async (request) => {
        const asset = (await bundle.load()).get(path);
        if (asset === undefined) throw new Error(`the console bundle has no ${path}`);
        return serveAsset(request, asset, immutable);
      },
    }));
  const routes = [...bundle.paths].map(([path, immutable]): HttpRoute => ({
    kind: "http",
    path,
    methods: path === "/" ? ["GET", "HEAD", "POST"] : ["GET", "HEAD"],
    scope: null,
    yieldsToHostRoutes: true,
    handle: async (request) => {
      if (request.method === "POST") return seeConsole();
      const asset = (await bundle.load()).get(path);
      if (asset === undefined) throw new Error(`the console bundle has no ${path}`);
      return serveAsset(request, asset, immutable);
    },
  }));
  return { routes: [...routes, ...prefixed], servePage: async (request) => serveAsset(request, await rooted(), false) };
}
