-- Customer segmentation and the outbox (see the MariaDB migration of the
-- same version). The partial unique indexes allow at most one active,
-- open-ended primary assignment (and primary territory) per customer.

CREATE TABLE `tabHD Customer Segment` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `segment_name` TEXT NOT NULL,
  `description` TEXT,
  `status` TEXT NOT NULL DEFAULT 'Active' CHECK (`status` IN ('Active', 'Inactive')),
  `service_level` TEXT NOT NULL DEFAULT 'Standard',
  `priority` INTEGER NOT NULL DEFAULT 0 CHECK (`priority` BETWEEN 0 AND 1000),
  `price_tier` TEXT
);
CREATE INDEX `idx_segment_status` ON `tabHD Customer Segment` (`status`, `name`);

CREATE TABLE `tabHD Customer Segment Assignment` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `customer` TEXT NOT NULL,
  `segment` TEXT NOT NULL REFERENCES `tabHD Customer Segment` (`name`),
  `is_primary` INTEGER NOT NULL DEFAULT 0,
  `effective_from` TEXT NOT NULL,
  `effective_to` TEXT,
  `status` TEXT NOT NULL DEFAULT 'Active' CHECK (`status` IN ('Active', 'Superseded')),
  CHECK (`effective_to` IS NULL OR `effective_to` >= `effective_from`)
);
CREATE INDEX `idx_customer_segment_active`
  ON `tabHD Customer Segment Assignment` (`customer`, `is_primary`, `status`, `effective_from`);
CREATE INDEX `idx_segment_members`
  ON `tabHD Customer Segment Assignment` (`segment`, `status`, `customer`);
CREATE UNIQUE INDEX `uniq_open_primary`
  ON `tabHD Customer Segment Assignment` (`customer`)
  WHERE `is_primary` = 1 AND `status` = 'Active' AND `effective_to` IS NULL;

CREATE TABLE `tabHD Customer Territory Mapping` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `customer` TEXT NOT NULL,
  `territory` TEXT NOT NULL,
  `coverage_type` TEXT NOT NULL CHECK (`coverage_type` IN ('Primary', 'Secondary', 'Delivery')),
  `effective_from` TEXT NOT NULL,
  `effective_to` TEXT,
  `price_tier` TEXT,
  `service_level` TEXT,
  `status` TEXT NOT NULL DEFAULT 'Active' CHECK (`status` IN ('Active', 'Superseded')),
  CHECK (`effective_to` IS NULL OR `effective_to` >= `effective_from`)
);
CREATE INDEX `idx_customer_territory_active`
  ON `tabHD Customer Territory Mapping` (`customer`, `coverage_type`, `status`, `effective_from`);
CREATE INDEX `idx_territory_customers`
  ON `tabHD Customer Territory Mapping` (`territory`, `status`, `customer`);
CREATE UNIQUE INDEX `uniq_open_primary_territory`
  ON `tabHD Customer Territory Mapping` (`customer`)
  WHERE `coverage_type` = 'Primary' AND `status` = 'Active' AND `effective_to` IS NULL;

CREATE TABLE `tabHD Sync Outbox` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `source_service` TEXT NOT NULL,
  `entity_type` TEXT NOT NULL,
  `entity_name` TEXT NOT NULL,
  `event_type` TEXT NOT NULL,
  `payload` TEXT NOT NULL,
  `occurred_at` TEXT NOT NULL,
  `correlation_id` TEXT,
  `relayed_at` TEXT
);
CREATE INDEX `idx_outbox_pending` ON `tabHD Sync Outbox` (`relayed_at`, `occurred_at`);
CREATE INDEX `idx_outbox_entity` ON `tabHD Sync Outbox` (`entity_type`, `entity_name`, `occurred_at`);
