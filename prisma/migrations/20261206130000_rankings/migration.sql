-- K-wise rankings: a comparison may hold K responses (3 to 9) to put in order, and a judgment of
-- it the rank of each. Pairs keep both arrays empty (no rewrite of existing rows: constant defaults).
ALTER TABLE "Comparison" ADD COLUMN "responseIds" UUID[] DEFAULT ARRAY[]::UUID[];
ALTER TABLE "Preference" ADD COLUMN "ranks" INTEGER[] DEFAULT ARRAY[]::INTEGER[];

-- A pair and a ranking may start with the same two responses: the ranking's responses are part of
-- what makes a comparison unique (a pair's are empty).
DROP INDEX "Comparison_promptId_responseAId_responseBId_key";
CREATE UNIQUE INDEX "Comparison_promptId_responseAId_responseBId_responseIds_key" ON "Comparison"("promptId", "responseAId", "responseBId", "responseIds");
