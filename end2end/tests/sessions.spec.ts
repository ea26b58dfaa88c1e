import { test, expect } from "./fixtures";
import { freshEmail, open, PASSWORD, signIn, signUp } from "./helpers";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";

test("the profile lists my sessions; signing another one out signs that browser out", async ({ page, browser }) => {
  const email = freshEmail("ses");
  await signUp(page, email, "Sam");
  // The same account in another browser.
  const other = await (await browser.newContext()).newPage();
  await signIn(other, email, PASSWORD);
  await expect(other.getByRole("heading", { name: "Welcome, Sam" })).toBeVisible();

  await open(page, "/profile");
  const sessions = page.getByRole("region", { name: "Sessions" });
  const table = sessions.getByRole("table", { name: "Your sessions" });
  await expect(table.getByRole("row")).toHaveCount(3); // the header and two sessions
  await expect(table.getByRole("cell", { name: /Chrome on Linux\s+This session/ })).toBeVisible();
  await expect(table.getByRole("cell", { name: "127.0.0.1" }).first()).toBeVisible();

  await table.getByRole("button", { name: /^Sign out Chrome on Linux/ }).click();
  await expect(sessions.getByRole("status")).toHaveText("Session signed out.");
  await expect(table.getByRole("row")).toHaveCount(2);
  await expect(sessions.getByRole("button", { name: "Sign out all other sessions" })).toHaveCount(0);

  // The other browser is signed out on its next step; this one is not.
  await other.reload();
  await expect(other.getByRole("link", { name: "Sign in" })).toBeVisible();
  await page.reload();
  await expect(page.getByRole("heading", { name: "Your profile" })).toBeVisible();

  // Two more sign-ins elsewhere, then all others at once.
  const third = await (await browser.newContext()).newPage();
  await signIn(third, email, PASSWORD);
  await expect(third.getByRole("heading", { name: "Welcome, Sam" })).toBeVisible();
  const fourth = await (await browser.newContext()).newPage();
  await signIn(fourth, email, PASSWORD);
  await expect(fourth.getByRole("heading", { name: "Welcome, Sam" })).toBeVisible();
  await page.reload();
  await expect(table.getByRole("row")).toHaveCount(4);
  await sessions.getByRole("button", { name: "Sign out all other sessions" }).click();
  await expect(sessions.getByRole("status")).toHaveText("2 other session(s) signed out.");
  await expect(table.getByRole("row")).toHaveCount(2);
  for (const p of [third, fourth]) {
    await p.reload();
    await expect(p.getByRole("link", { name: "Sign in" })).toBeVisible();
  }
});

test("an admin sees how many sessions a user has and signs them out everywhere", async ({ page, browser }) => {
  const email = freshEmail("away");
  const person = await (await browser.newContext()).newPage();
  await signUp(person, email, "Ada");
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await open(page, "/admin/users");
  await page.getByRole("search", { name: "Filter users" }).getByLabel("Search").fill(email);
  const users = page.getByRole("table", { name: "Users" });
  const row = users.getByRole("row", { name: new RegExp(`${email}.*Ada.*active`) });
  await expect(row.getByRole("cell", { name: "1", exact: true })).toBeVisible();
  await users.getByRole("button", { name: `Sign ${email} out everywhere` }).click();
  await expect(page.getByRole("status")).toHaveText("1 session(s) signed out.");
  await expect(row.getByRole("cell", { name: "0", exact: true })).toBeVisible();
  await expect(users.getByRole("button", { name: `Sign ${email} out everywhere` })).toHaveCount(0);
  await person.reload();
  await expect(person.getByRole("link", { name: "Sign in" })).toBeVisible();
});

test("an admin lists a user's sessions and signs one of them out", async ({ page, browser }) => {
  const email = freshEmail("one");
  const first = await (await browser.newContext()).newPage();
  await signUp(first, email, "Oda");
  const second = await (await browser.newContext()).newPage();
  await signIn(second, email, PASSWORD);
  await expect(second.getByRole("heading", { name: "Welcome, Oda" })).toBeVisible();
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await open(page, "/admin/users");
  await page.getByRole("search", { name: "Filter users" }).getByLabel("Search").fill(email);
  await page.getByRole("table", { name: "Users" }).getByRole("button", { name: `Show sessions of ${email}` }).click();
  const panel = page.getByRole("region", { name: `Sessions of ${email}` });
  const list = panel.getByRole("table", { name: "User sessions" });
  await expect(list.getByRole("row")).toHaveCount(3); // the header and two sessions
  await list.getByRole("button", { name: /^Sign out session / }).first().click();
  await expect(panel.getByRole("status")).toHaveText("Session signed out.");
  await expect(list.getByRole("row")).toHaveCount(2);
  // Exactly one of the two browsers was signed out.
  let signedOut = 0;
  for (const p of [first, second]) {
    await p.reload();
    await expect(p.locator("body[data-hydrated]")).toBeAttached();
    if (await p.getByRole("link", { name: "Sign in" }).isVisible()) signedOut += 1;
  }
  expect(signedOut).toBe(1);
});
