-- The provider's remaining request quota at the end of a run, when it reports one.
ALTER TABLE "runs" ADD COLUMN "quota_remaining" BIGINT;
