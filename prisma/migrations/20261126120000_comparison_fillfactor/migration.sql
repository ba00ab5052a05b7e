-- Rating updates a comparison's counts twice per judgment (the lease takes a slot, the judgment
-- turns it into a vote); neither changes an indexed column unless it fills the comparison. With
-- room left on each page PostgreSQL can make those HOT updates: no new entry in any of the
-- table's six indexes, less WAL, and no dead entries for the queue's scan to read past.
ALTER TABLE "Comparison" SET (fillfactor = 70);
