-- When a run that ended `waiting` (the provider's rate limit or call quota spent) may go on.
ALTER TABLE "runs" ADD COLUMN "waiting_until" TIMESTAMPTZ;
