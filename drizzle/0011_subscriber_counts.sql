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
