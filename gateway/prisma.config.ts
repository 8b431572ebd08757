import { defineConfig } from "prisma/config";
import { databaseUrl } from "./lib/env-file";

// Prisma 7 takes the connection URL from here, not from schema.prisma.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: databaseUrl() },
});
