import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { applyMigrations } from "../../lib/migrations";

// Builds one database from the real migrations; each test file gets a copy.
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(tmpdir(), "my-claw-test-"));
  const template = path.join(dir, "template.db");
  await applyMigrations(`file:${template}`);
  project.provide("templateDb", template);
  project.provide("scratchDir", dir);
  return () => rmSync(dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    templateDb: string;
    scratchDir: string;
  }
}
