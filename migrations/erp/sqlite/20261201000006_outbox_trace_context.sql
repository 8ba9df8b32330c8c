-- The trace a change was made in (W3C traceparent), so the Sync service's
-- delivery of its event continues the same trace.
ALTER TABLE `tabHD Sync Outbox` ADD COLUMN `traceparent` TEXT DEFAULT NULL;
