-- The ledger records a publisher's resend of `unknown` deliveries (src/essays/service.ts resendUnknown).
-- A constant default: PostgreSQL adds both columns without rewriting the table, however many rows it has.
ALTER TABLE "deliveries" ADD COLUMN "resends" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "deliveries" ADD COLUMN "resent_at" timestamp with time zone;
