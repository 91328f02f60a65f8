CREATE TYPE "public"."subscriber_event_kind" AS ENUM('subscribed', 'imported', 'confirmed', 'unsubscribed', 'bounced');--> statement-breakpoint
CREATE TABLE "erased_deliveries" (
	"essay_id" integer NOT NULL,
	"status" "delivery_status" NOT NULL,
	"count" integer NOT NULL,
	CONSTRAINT "erased_deliveries_pkey" PRIMARY KEY("essay_id","status")
);
--> statement-breakpoint
CREATE TABLE "subscriber_events" (
	"id" integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "subscriber_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 2147483647 START WITH 1 CACHE 1),
	"subscriber_id" integer NOT NULL,
	"kind" "subscriber_event_kind" NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "subscriber_events" ADD CONSTRAINT "subscriber_events_subscriber_id_subscribers_id_fk" FOREIGN KEY ("subscriber_id") REFERENCES "public"."subscribers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "subscriber_events_subscriber_idx" ON "subscriber_events" USING btree ("subscriber_id","at");--> statement-breakpoint
CREATE INDEX "subscribers_created_idx" ON "subscribers" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "subscribers_status_created_idx" ON "subscribers" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "subscribers_email_trgm_idx" ON "subscribers" USING gin (lower("email") gin_trgm_ops);