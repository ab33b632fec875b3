-- DeleteStream marks the stream DELETING and moves its name and ARN out of the way ('#<id>' is
-- never a stream name), so that it is gone from Describe and List and its name is free at once;
-- the lifecycle task then deletes its fragments a batch at a time, its objects, and last its
-- row (design/0015). No fragment is added to a stream being deleted (refused as a foreign key
-- violation, as for a stream that no longer exists):
CREATE FUNCTION refuse_fragments_of_deleted_streams() RETURNS trigger AS $$
BEGIN
    IF (SELECT status FROM streams WHERE id = NEW.stream_id) = 'DELETING' THEN
        RAISE EXCEPTION 'stream % deleted', NEW.stream_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER fragments_of_deleted_streams BEFORE INSERT ON fragments
    FOR EACH ROW EXECUTE FUNCTION refuse_fragments_of_deleted_streams();
