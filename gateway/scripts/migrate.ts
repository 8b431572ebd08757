// npm run db:migrate                 apply pending migrations to DATABASE_URL
// npm run db:migrate -- create NAME  write prisma/migrations/<stamp>_NAME from schema.prisma changes
// npm run db:migrate -- check        exit 1 when schema.prisma and the migrations disagree
import { applyMigrations, createMigration, diffMigrationsToSchema } from "../lib/migrations";
import { databaseUrl, databasePath } from "../lib/env-file";

const [command = "deploy", name] = process.argv.slice(2);

async function main(): Promise<number> {
  switch (command) {
    case "deploy": {
      const url = databaseUrl();
      const applied = await applyMigrations(url);
      const where = databasePath(url);
      process.stdout.write(
        applied.length ? `applied ${applied.join(", ")} to ${where}\n` : `database ${where} is up to date\n`,
      );
      return 0;
    }
    case "create": {
      if (!name) throw new Error("usage: npm run db:migrate -- create <name>");
      const folder = await createMigration(name);
      process.stdout.write(folder ? `wrote prisma/migrations/${folder}/migration.sql\n` : "schema unchanged\n");
      return 0;
    }
    case "check": {
      const sql = await diffMigrationsToSchema();
      if (sql === "") return 0;
      process.stderr.write(`schema.prisma has changes that no migration covers:\n${sql}\n`);
      return 1;
    }
    default:
      throw new Error(`unknown command ${command}; use deploy, create or check`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`db:migrate failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
