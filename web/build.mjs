// Bundles the page (src/) and its npm dependencies into dist/, which build.rs embeds into the
// server binary. Run by build.rs; `npm run build` by hand.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';

// Where to write: the first argument (build.rs passes a folder in its OUT_DIR), else dist/.
const outdir = process.argv[2] ?? 'dist';
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: { app: 'src/app.js', player: 'src/player.js' },
  bundle: true,
  // The page loads the player's bundle only when asked (see app.js).
  external: ['/assets/*'],
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  outdir,
  logLevel: 'warning',
});
await build({
  entryPoints: { app: 'src/style.css', player: 'src/player.css' },
  bundle: true,
  minify: true,
  outdir,
  logLevel: 'warning',
});
await copyFile('src/index.html', `${outdir}/index.html`);
await copyFile('src/icon.svg', `${outdir}/icon.svg`);
