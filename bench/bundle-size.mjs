// The console's first load on the wire, measured by Chromium against a running server:
// signs in (one request, no page), then opens `/` in a fresh context with an empty cache and
// sums the encoded bytes of every response until the app has hydrated and the network is
// idle; then follows the "API keys" link and counts what that page fetches on top (its lazy
// chunk). Used by bench/bundle.sh.
//
//   node bench/bundle-size.mjs <base url> <email> <password> [limit KB]
import { createRequire } from "node:module";
const require = createRequire(new URL("../end2end/package.json", import.meta.url));
const { chromium } = require("@playwright/test");

const [base, email, password, limitKb] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const context = await browser.newContext({ baseURL: base });
const signIn = await context.request.post("/rpc/sign_in", {
  form: { email, password },
  headers: { Origin: base },
});
if (!signIn.ok()) throw new Error(`sign-in failed: ${signIn.status()} ${await signIn.text()}`);

const page = await context.newPage();
const seen = [];
page.on("requestfinished", async (request) => {
  const sizes = await request.sizes();
  const response = await request.response();
  seen.push({
    url: new URL(request.url()).pathname,
    bytes: sizes.responseBodySize + sizes.responseHeadersSize,
    encoding: (await response?.headerValue("content-encoding")) ?? "identity",
  });
});
await page.goto("/");
await page.locator("body[data-hydrated]").waitFor({ state: "attached" });
await page.waitForLoadState("networkidle");
const first = seen.splice(0);
await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
await page.getByRole("heading", { name: "API keys", level: 1 }).waitFor();
await page.waitForLoadState("networkidle");
const keys = seen.splice(0);
await browser.close();

const kb = (n) => (n / 1024).toFixed(1);
const sum = (list) => list.reduce((a, r) => a + r.bytes, 0);
const show = (title, list) => {
  console.log(title);
  for (const r of list.sort((a, b) => b.bytes - a.bytes)) {
    console.log(`  ${kb(r.bytes).padStart(8)} KB  ${r.encoding.padEnd(8)} ${r.url}`);
  }
  console.log(`  ${kb(sum(list)).padStart(8)} KB  total`);
};
show("first load of / (signed in, empty cache):", first);
show("then the API keys page:", keys);
const assets = first.filter((r) => r.url.startsWith("/pkg/"));
const plain = assets.filter((r) => r.encoding === "identity" && !r.url.endsWith(".json"));
if (plain.length) console.log(`not compressed: ${plain.map((r) => r.url).join(", ")}`);
if (limitKb && sum(first) > Number(limitKb) * 1024) {
  console.error(`first load ${kb(sum(first))} KB is over ${limitKb} KB`);
  process.exit(1);
}
