import { test, expect } from "./fixtures";
import { freshEmail, open, signIn, waitForMail } from "./helpers";
import { ADMIN_EMAIL, ADMIN_PASSWORD } from "../playwright.config";

test("an admin creates a user, who chooses a password from the emailed link; disabling signs them out; delete", async ({ page, browser }) => {
  const email = freshEmail("made");
  await signIn(page, ADMIN_EMAIL, ADMIN_PASSWORD);
  await expect(page.getByRole("heading", { name: "Welcome, admin" })).toBeVisible();
  await open(page, "/admin/users");

  // Bad input: a readable error, nothing created.
  const create = page.getByRole("region", { name: "Create a user" });
  await create.getByLabel("Email").fill(email);
  await create.getByLabel("Display name").fill("Made");
  await create.getByLabel("Instance role").selectOption("");
  await create.getByRole("button", { name: "Create user" }).click();
  await expect(create.getByRole("status")).toHaveText(`Created ${email}. A link to choose a password is on its way.`);
  await create.getByRole("button", { name: "Create user" }).click();
  await expect(create.getByRole("alert")).toHaveText("an account with this email already exists");

  // Search finds them (the list is paged, newest first).
  const filters = page.getByRole("search", { name: "Filter users" });
  await filters.getByLabel("Search").fill(email);
  const users = page.getByRole("table", { name: "Users" });
  await expect(users.getByRole("row")).toHaveCount(2);
  await expect(users.getByRole("row", { name: new RegExp(`${email}.*Made.*active`) })).toBeVisible();

  // The person opens the link in their own browser and chooses a password.
  const mail = await waitForMail(email, "/set-password?token=");
  const link = mail.match(/https?:\/\/\S+\/set-password\?token=\S+/);
  expect(link, mail).not.toBeNull();
  const context = await browser.newContext();
  const person = await context.newPage();
  await person.goto(link![0]);
  await expect(person.locator("body[data-hydrated]")).toBeAttached();
  await expect(person.getByText(`For ${email}`)).toBeVisible();
  await person.getByLabel("New password").fill("short");
  await person.getByLabel("New password").evaluate((e: HTMLInputElement) => e.removeAttribute("minlength"));
  await person.getByRole("button", { name: "Set password" }).click();
  await expect(person.getByRole("alert")).toContainText("at least");
  await person.getByLabel("New password").fill("my own chosen passphrase");
  await person.getByRole("button", { name: "Set password" }).click();
  await expect(person.getByRole("status")).toHaveText(`Your password is set. Sign in as ${email}.`);
  await signIn(person, email, "my own chosen passphrase");
  await expect(person.getByRole("heading", { name: "Welcome, Made" })).toBeVisible();

  // Disabled: their session ends at once.
  await users.getByRole("button", { name: `Disable ${email}` }).click();
  await expect(users.getByRole("row", { name: new RegExp(`${email}.*disabled`) })).toBeVisible();
  await open(person, "/profile");
  await expect(person.getByRole("heading", { name: "Sign in to Keyward" })).toBeVisible();
  await signIn(person, email, "my own chosen passphrase");
  // The same answer as a wrong password: nothing tells a disabled account apart.
  await expect(person.getByRole("alert")).toHaveText("invalid email or password");
  await context.close();

  // How many deleted accounts the list holds now (other journeys delete some too).
  // ("1 user", "2 users".) Read once the list shows every deleted account and nothing else:
  // the search cleared first, so no state in between shows none of either.
  const total = page.getByText(/^\d+ users?$/);
  await filters.getByLabel("Search").fill("");
  await filters.getByLabel("Status").selectOption("deleted");
  await expect(users.getByRole("row", { name: /\b(active|disabled)\b/ })).toHaveCount(0);
  const deletedBefore = parseInt((await total.textContent()) ?? "", 10);
  expect(deletedBefore).not.toBeNaN();
  await filters.getByLabel("Status").selectOption("");
  await filters.getByLabel("Search").fill(email);
  await expect(users.getByRole("row")).toHaveCount(2);

  // Enabled again, then deleted behind a confirmation.
  await users.getByRole("button", { name: `Enable ${email}` }).click();
  await expect(users.getByRole("row", { name: new RegExp(`${email}.*active`) })).toBeVisible();
  await users.getByRole("button", { name: `Delete ${email}` }).click();
  await users.getByRole("button", { name: `Confirm deleting ${email}` }).click();
  await expect(page.getByRole("status").filter({ hasText: "User deleted." })).toBeVisible();
  await expect(users.getByRole("row", { name: new RegExp(email) })).toHaveCount(0);
  // Kept as a deleted account (its address and name gone), not removed: one more of them.
  await filters.getByLabel("Status").selectOption("deleted");
  await filters.getByLabel("Search").fill("");
  await expect(total).toHaveText(`${deletedBefore + 1} ${deletedBefore + 1 === 1 ? "user" : "users"}`);
  await expect(users.getByRole("row", { name: /Deleted user.*deleted/ }).first()).toBeVisible();
});
