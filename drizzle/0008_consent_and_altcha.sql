CREATE TABLE "altcha_spent" (
	"nonce" text PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "page" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "user_agent" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "ip" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "text_version" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_page" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_user_agent" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_ip" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_text_version" text;--> statement-breakpoint
CREATE INDEX "altcha_spent_expires_idx" ON "altcha_spent" USING btree ("expires_at");