-- subscribers_status_created_idx (status, created_at, id) serves every lookup by status alone.
DROP INDEX "subscribers_status_idx";--> statement-breakpoint
-- The trigram index's pending list at 512 kB rather than 4 MB (src/db/schema.ts). Set in place, without
-- rebuilding the index as drizzle-kit would: the same index, with the new limit for the merges to come.
ALTER INDEX "subscribers_email_trgm_idx" SET (gin_pending_list_limit = 512);
