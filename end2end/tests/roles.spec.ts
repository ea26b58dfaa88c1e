import { test, expect, Page } from "./fixtures";
import { createReadOnlyKey, freshEmail, open, signUp, openCreateKeyForm } from "./helpers";

/** Creates a role inheriting `parent` from the "Create a role" form. */
async function createRole(page: Page, name: string, parent: string) {
  const form = page.getByRole("region", { name: "Create a role" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Inherits from").selectOption({ label: parent });
  await form.getByRole("button", { name: "Create role" }).click();
  // A new role is selected at once.
  await expect(page.getByRole("region", { name: `Role ${name}` })).toBeVisible();
}

test("a three-level hierarchy built in the editor shows effective permissions and where each comes from", async ({ page }) => {
  await signUp(page, freshEmail("roles"), "Rhea");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Roles" }).click();
  const tree = page.getByRole("region", { name: "Role hierarchy" });
  await expect(tree.getByRole("button", { name: "viewer" })).toBeVisible();

  await createRole(page, "support", "viewer");
  await createRole(page, "lead", "support");
  // lead grants members:write directly (which requires members:read).
  const lead = page.getByRole("region", { name: "Role lead" });
  await lead.getByLabel("Permission", { exact: true }).selectOption("members:write");
  await lead.getByRole("button", { name: "Grant" }).click();
  await expect(lead.getByRole("table", { name: "Permissions granted directly by lead" }).getByRole("cell", { name: "members:write", exact: true })).toBeVisible();
  await createRole(page, "manager", "lead");

  // The tree: viewer → support → lead → manager, nested.
  await expect(tree.getByRole("listitem").filter({ hasText: "viewer" }).getByRole("listitem").filter({ hasText: "support" }).getByRole("listitem").filter({ hasText: "lead" }).getByRole("button", { name: "manager" })).toBeVisible();

  const effective = page.getByRole("region", { name: "Role manager" }).getByRole("table", { name: "Effective permissions of manager" });
  await expect(effective.getByRole("row", { name: "members:write inherited from lead" })).toBeVisible();
  await expect(effective.getByRole("row", { name: "keys:read inherited from viewer" })).toBeVisible();
  await expect(effective.getByRole("row", { name: "members:read inherited from viewer; required by members:write" })).toBeVisible();
  await expect(effective.getByRole("row", { name: /keys:write/ })).toHaveCount(0);

  // Re-parenting support under manager would make a cycle: refused, named, nothing changes.
  await tree.getByRole("button", { name: "support" }).click();
  const support = page.getByRole("region", { name: "Role support" });
  const supportParents = support.getByRole("group", { name: "Parent roles" });
  await expect(supportParents.getByLabel("viewer", { exact: true })).toBeChecked();
  await supportParents.getByLabel("viewer", { exact: true }).uncheck();
  await supportParents.getByLabel("manager", { exact: true }).check();
  await support.getByRole("button", { name: "Save parents" }).click();
  await expect(page.getByRole("alert")).toContainText("that would make a cycle: support → manager → lead → support");
  await expect(support.getByRole("table", { name: "Effective permissions of support" }).getByRole("row", { name: "keys:read inherited from viewer" })).toBeVisible();

  // Removing lead's members:write takes it from manager at once.
  await tree.getByRole("button", { name: "lead" }).click();
  await page.getByRole("region", { name: "Role lead" }).getByRole("button", { name: "Remove members:write" }).click();
  await tree.getByRole("button", { name: "manager" }).click();
  await expect(page.getByRole("region", { name: "Role manager" }).getByRole("table", { name: "Effective permissions of manager" }).getByRole("row", { name: /members:write/ })).toHaveCount(0);

  // A role may have several parents: manager keeps lead and also takes support; both stay
  // ticked after a reload.
  const managerParents = page.getByRole("region", { name: "Role manager" }).getByRole("group", { name: "Parent roles" });
  await expect(managerParents.getByLabel("lead", { exact: true })).toBeChecked();
  await managerParents.getByLabel("support", { exact: true }).check();
  await page.getByRole("region", { name: "Role manager" }).getByRole("button", { name: "Save parents" }).click();
  // The hierarchy shows it under each parent.
  await expect(tree.getByRole("button", { name: "manager" })).toHaveCount(2);
  await page.reload();
  await tree.getByRole("button", { name: "manager" }).first().click();
  for (const name of ["lead", "support"]) {
    await expect(managerParents.getByLabel(name, { exact: true })).toBeChecked();
  }
  await expect(managerParents.getByLabel("viewer", { exact: true })).not.toBeChecked();
});

test("a service permission made on the roles page goes on a key, and verify checks it", async ({ page }) => {
  await signUp(page, freshEmail("svc"), "Sam");
  await open(page, "/roles");
  const perm = page.getByRole("region", { name: "New permission" });
  await perm.getByLabel("Name").fill("invoices:read");
  await perm.getByRole("button", { name: "Create permission" }).click();
  await expect(perm.getByRole("status")).toHaveText("Created invoices:read");

  // A key for the billing service, carrying it.
  await open(page, "/keys");
  await openCreateKeyForm(page);
  const form = page.getByRole("region", { name: "Create an API key" });
  await form.getByLabel("Name").fill("billing service");
  await form.getByLabel("Service permissions").fill("invoices:read");
  await form.getByRole("button", { name: "Create" }).click();
  const reveal = page.getByRole("region", { name: "New API key" });
  const key = await reveal.getByRole("textbox", { name: "New API key" }).inputValue();
  await reveal.getByRole("button", { name: "I have stored it" }).click();
  await page.getByRole("table", { name: "API keys" }).getByRole("link", { name: "billing service" }).click();
  await expect(page.getByRole("definition").filter({ hasText: "invoices:read" })).toBeVisible();

  // The billing service verifies what a request needs.
  const verifier = await createReadOnlyKey(page, "verifier");
  const verify = async (permissions: string[]) =>
    (await page.request.post("/api/v1/keys/verify", {
      headers: { Authorization: `Bearer ${verifier}` },
      data: { key, permissions },
    })).json();
  expect(await verify(["invoices:read"])).toMatchObject({ valid: true, code: "valid" });
  expect(await verify(["invoices:refund"])).toMatchObject({ valid: false, code: "insufficient_permissions", missing: ["invoices:refund"] });

  // Asking for one that does not exist is refused readably, and no key is made.
  await open(page, "/keys");
  await openCreateKeyForm(page);
  await form.getByLabel("Name").fill("ghost");
  await form.getByLabel("Service permissions").fill("ghost:read");
  await form.getByRole("button", { name: "Create" }).click();
  await expect(page.getByRole("alert")).toContainText("ghost:read is not a permission of this organization");
  // What the organization holds, read from the server (an empty list on the page would pass
  // before its refetch arrived): still the two keys.
  const listed = await (await page.request.get("/api/v1/keys", { headers: { Authorization: `Bearer ${verifier}` } })).json();
  expect(listed.data.map((k: { name: string }) => k.name).sort()).toEqual(["billing service", "verifier"]);
});

test("a permission group granted to a role shows in its effective permissions, by name", async ({ page }) => {
  await signUp(page, freshEmail("groups"), "Gus");
  await open(page, "/roles");
  const group = page.getByRole("region", { name: "New group" });
  await group.getByLabel("Name").fill("auditors");
  await group.getByLabel("Permissions").fill("audit:read, usage:read");
  await group.getByRole("button", { name: "Create group" }).click();
  await expect(group.getByRole("status")).toHaveText("Created group auditors");
  await expect(page.getByRole("table", { name: "Groups" }).getByRole("row", { name: /auditors audit:read, usage:read/ })).toBeVisible();

  await createRole(page, "support", "viewer");
  const support = page.getByRole("region", { name: "Role support" });
  await support.getByLabel("Group", { exact: true }).selectOption({ label: "auditors" });
  await support.getByRole("button", { name: "Grant group" }).click();
  const effective = support.getByRole("table", { name: "Effective permissions of support" });
  await expect(effective.getByRole("row", { name: "audit:read group auditors" })).toBeVisible();

  // Taken away again: audit:read goes with it (usage:read stays, from the viewer).
  await support.getByRole("table", { name: "Groups granted to support" }).getByRole("button", { name: "Remove group auditors" }).click();
  await expect(effective.getByRole("row", { name: /audit:read/ })).toHaveCount(0);
  await expect(effective.getByRole("row", { name: "usage:read inherited from viewer" })).toBeVisible();
});
