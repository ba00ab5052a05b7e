-- Comparisons whose two responses have the same text cannot be judged meaningfully, and no pairing
-- strategy creates them any more. Those stored before are retired: a comparison nobody has judged
-- yet is removed (with its leases and skips), and one with judgments keeps them but takes no more
-- (its wanted votes lowered to those it has, so the queue no longer serves it). Pairwise exports
-- already leave such judgments out and count them.
DELETE FROM "Comparison" c
USING "Response" a, "Response" b
WHERE a.id = c."responseAId" AND b.id = c."responseBId" AND a.text = b.text
  AND c."voteCount" = 0
  AND NOT EXISTS (SELECT 1 FROM "Preference" p WHERE p."comparisonId" = c.id);

UPDATE "Comparison" c
SET "requiredVotes" = c."voteCount"
FROM "Response" a, "Response" b
WHERE a.id = c."responseAId" AND b.id = c."responseBId" AND a.text = b.text
  AND c."voteCount" < c."requiredVotes";
