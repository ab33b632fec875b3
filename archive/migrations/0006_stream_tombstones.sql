-- DeleteStream marks the stream DELETING and moves its name and ARN out of the way ('#<id>' is
-- never a stream name), so that it is gone from Describe and List and its name is free at once;
-- the lifecycle task then deletes its fragments a batch at a time, its objects, and last its
-- row (design/0015). No fragment is added to a stream being deleted:
CREATE TRIGGER fragments_of_deleted_streams BEFORE INSERT ON fragments
WHEN (SELECT status FROM streams WHERE id = NEW.stream_id) = 'DELETING'
BEGIN
    SELECT RAISE(ABORT, 'stream deleted');
END;
