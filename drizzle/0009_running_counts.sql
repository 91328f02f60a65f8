CREATE TABLE "delivery_counts" (
	"essay_id" integer NOT NULL,
	"second" bigint NOT NULL,
	"status" "delivery_status" NOT NULL,
	"shard" smallint NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "delivery_counts_pkey" PRIMARY KEY("essay_id","second","status","shard")
);
--> statement-breakpoint
CREATE TABLE "subscriber_counts" (
	"status" "subscriber_status" NOT NULL,
	"shard" smallint NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "subscriber_counts_pkey" PRIMARY KEY("status","shard")
);
--> statement-breakpoint
CREATE TABLE "subscriber_days" (
	"day" date NOT NULL,
	"kind" text NOT NULL,
	"shard" smallint NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "subscriber_days_pkey" PRIMARY KEY("day","kind","shard")
);
--> statement-breakpoint
CREATE INDEX "deliveries_failed_idx" ON "deliveries" USING btree ("essay_id","updated_at" DESC NULLS LAST,"subscriber_id") WHERE status in ('failed', 'unknown');--> statement-breakpoint
CREATE INDEX "deliveries_unknown_idx" ON "deliveries" USING btree ("essay_id","subscriber_id") WHERE status = 'unknown';--> statement-breakpoint
CREATE INDEX "deliveries_resent_idx" ON "deliveries" USING btree ("essay_id") WHERE resends > 0;--> statement-breakpoint
CREATE INDEX "subscriber_events_kind_idx" ON "subscriber_events" USING btree ("kind","at");