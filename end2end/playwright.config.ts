import { defineConfig } from "@playwright/test";
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";

// The server under test: the freshly built `keyward` binary on a throw-away SQLite file, with
// sign-up open (an operator setting that is off by default) and a known first admin.
const port = Number(process.env.KEYWARD_E2E_PORT ?? 3199);
const root = path.resolve(__dirname, "..");
const bin = process.env.KEYWARD_BIN ?? path.join(root, "target", "debug", "keyward");
// Made once by the main process; the test workers load this file again and inherit it, so
// they read email from the same folder the SMTP sink writes to.
process.env.KEYWARD_E2E_DIR ??= fs.mkdtempSync(path.join(os.tmpdir(), "keyward-e2e-"));
const dataDir = process.env.KEYWARD_E2E_DIR;
// The SMTP server the journeys read email from (end2end/smtp_sink.py): one file per message.
const smtpPort = Number(process.env.KEYWARD_E2E_SMTP_PORT ?? 3198);
export const MAIL_DIR = path.join(dataDir, "mail");
// The server's log, which the fixture reads: an internal error fails the journey it happened in.
export const SERVER_LOG = path.join(dataDir, "server.log");

// Passkeys need a host name (browsers refuse an IP address as the WebAuthn relying party):
// the server's default for an IP public origin is `localhost` at the same port.
export const PASSKEY_ORIGIN = `http://localhost:${port}`;

export const ADMIN_EMAIL = "admin@keyward.local";
export const ADMIN_PASSWORD = "e2e admin passphrase";

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: [
  {
    command: `python3 "${path.join(__dirname, "smtp_sink.py")}" ${smtpPort} "${MAIL_DIR}"`,
    port: smtpPort,
    timeout: 20_000,
    reuseExistingServer: false,
  },
  {
    // The log still reaches the reporter (stderr), and a copy goes to SERVER_LOG.
    command: `bash -c 'exec "${bin}" serve 2> >(tee -a "${SERVER_LOG}" >&2)'`,
    cwd: root,
    url: `http://127.0.0.1:${port}/healthz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: "pipe",
    env: {
      KEYWARD_DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
      KEYWARD_LISTEN: `127.0.0.1:${port}`,
      KEYWARD_SIGNUP: "open",
      // Every journey signs up or in from 127.0.0.1; the per-address allowance has its own
      // HTTP test.
      KEYWARD_AUTH_ATTEMPTS_PER_IP_PER_MINUTE: "100000",
      KEYWARD_ADMIN_EMAIL: ADMIN_EMAIL,
      KEYWARD_ADMIN_PASSWORD: ADMIN_PASSWORD,
      KEYWARD_LEPTOS_CONFIG: path.join(root, "Leptos.toml"),
      KEYWARD_LOG: "info,sqlx=warn",
      KEYWARD_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      KEYWARD_MAIL_FROM: "Keyward <keyward@e2e.invalid>",
    },
  },
  ],
});
