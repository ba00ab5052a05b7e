-- Rate-limit counters shared by every server process on this database (sign-in, submissions): one
-- fixed window per key, timed by PostgreSQL's clock. UNLOGGED: kept out of the WAL, since losing
-- them in a crash only starts the windows again.
CREATE UNLOGGED TABLE "RateLimit" (
    "key" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "resetAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "RateLimit_pkey" PRIMARY KEY ("key")
);
