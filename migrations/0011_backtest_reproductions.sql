-- A run recorded as a re-run of an earlier one (`candlekeep backtests reproduce`): the id of the
-- original. No foreign key: runs are immutable (an ON DELETE action would be an update), and a
-- reproduction stays evidence of what it reproduced after the original is deleted. The API checks
-- the original exists when the reproduction is recorded.
ALTER TABLE backtests ADD COLUMN reproduced_from uuid;
CREATE INDEX backtests_reproduced_from ON backtests (reproduced_from) WHERE reproduced_from IS NOT NULL;
