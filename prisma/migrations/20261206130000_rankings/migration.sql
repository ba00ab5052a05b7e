-- K-wise rankings: a comparison may hold K responses (3 to 9) to put in order, and a judgment of
-- it the rank of each. Pairs keep both arrays empty (no rewrite of existing rows: constant defaults).
ALTER TABLE "Comparison" ADD COLUMN "responseIds" UUID[] DEFAULT ARRAY[]::UUID[];
ALTER TABLE "Preference" ADD COLUMN "ranks" INTEGER[] DEFAULT ARRAY[]::INTEGER[];
