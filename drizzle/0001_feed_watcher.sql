CREATE TYPE "public"."feed_entry_status" AS ENUM('archived', 'published', 'already_published', 'invalid');--> statement-breakpoint
CREATE TABLE "feed_entries" (
	"feed_key" text NOT NULL,
	"entry_key" text NOT NULL,
	"entry_id" text NOT NULL,
	"slug" text NOT NULL,
	"title" text,
	"url" text,
	"summary" text,
	"entry_at" timestamp with time zone,
	"status" "feed_entry_status" NOT NULL,
	"seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"published_at" timestamp with time zone,
	CONSTRAINT "feed_entries_pkey" PRIMARY KEY("feed_key","entry_key")
);
--> statement-breakpoint
CREATE TABLE "feeds" (
	"feed_key" text PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"etag" text,
	"last_modified" text,
	"newest_entry_at" timestamp with time zone,
	"first_read_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_read_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "feed_entries" ADD CONSTRAINT "feed_entries_feed_key_feeds_feed_key_fk" FOREIGN KEY ("feed_key") REFERENCES "public"."feeds"("feed_key") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "feed_entries_url_idx" ON "feed_entries" USING btree ("feed_key","url");