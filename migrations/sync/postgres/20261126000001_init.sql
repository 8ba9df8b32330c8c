-- The sync role's schema is created by the issue that builds its service;
-- this first version only marks the role as migrated.
SELECT 1;
