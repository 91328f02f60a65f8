ALTER TYPE "public"."subscriber_event_kind" ADD VALUE 'soft_bounced';--> statement-breakpoint
CREATE TABLE "bounce_receipts" (
	"source" text NOT NULL,
	"event_id" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "bounce_receipts_pkey" PRIMARY KEY("source","event_id")
);
--> statement-breakpoint
ALTER TABLE "subscriber_events" ADD COLUMN "source" text;--> statement-breakpoint
ALTER TABLE "subscriber_events" ADD COLUMN "reason" text;--> statement-breakpoint
ALTER TABLE "subscriber_events" ADD COLUMN "essay_id" integer;--> statement-breakpoint
ALTER TABLE "subscribers" ADD COLUMN "soft_bounces" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "subscribers" ADD COLUMN "soft_bounced_essay_id" integer;--> statement-breakpoint
CREATE INDEX "bounce_receipts_received_idx" ON "bounce_receipts" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "subscriber_events_essay_idx" ON "subscriber_events" USING btree ("essay_id","kind") WHERE essay_id is not null;