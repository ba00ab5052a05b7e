-- Servers keep who a session or API token belongs to in memory between requests. Any change to a
-- session, an API token or a user (revoked, expired, disabled, role changed, deleted), by whatever
-- process, notifies them on the channel loom_credentials with the user's id, once the change
-- commits; they then forget that user's credentials.
CREATE FUNCTION loom_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('loom_credentials', to_jsonb(OLD) ->> TG_ARGV[0]);
  RETURN NULL;
END
$$;

CREATE TRIGGER "Session_notify_credentials" AFTER UPDATE OR DELETE ON "Session"
  FOR EACH ROW EXECUTE FUNCTION loom_notify_credentials('userId');

CREATE TRIGGER "ApiToken_notify_credentials" AFTER UPDATE OR DELETE ON "ApiToken"
  FOR EACH ROW EXECUTE FUNCTION loom_notify_credentials('userId');

CREATE TRIGGER "User_notify_credentials" AFTER UPDATE OR DELETE ON "User"
  FOR EACH ROW EXECUTE FUNCTION loom_notify_credentials('id');
