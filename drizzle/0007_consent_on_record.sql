ALTER TABLE "confirmations" ADD COLUMN "page" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "user_agent" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "ip" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "text_version" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_page" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_user_agent" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_ip" text;--> statement-breakpoint
ALTER TABLE "confirmations" ADD COLUMN "confirm_text_version" text;