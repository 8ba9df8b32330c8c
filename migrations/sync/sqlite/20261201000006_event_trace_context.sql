-- The trace an event was recorded in (W3C traceparent): deliveries carry it
-- to their targets and continue it.
ALTER TABLE sync_events ADD COLUMN traceparent text;
