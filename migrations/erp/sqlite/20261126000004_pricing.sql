-- Dynamic pricing (see the MariaDB migration of the same version). Decimals
-- are INTEGER counts of billionths (harsha_store::decimal); dates and times
-- are ISO 8601 text. SQLite has no partitioning.

CREATE TABLE IF NOT EXISTS `tabItem Group` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `item_group_name` TEXT,
  `parent_item_group` TEXT,
  `is_group` INTEGER NOT NULL DEFAULT 0,
  `lft` INTEGER NOT NULL DEFAULT 0,
  `rgt` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS `tabItem Price` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `item_code` TEXT,
  `uom` TEXT,
  `price_list` TEXT,
  `selling` INTEGER NOT NULL DEFAULT 1,
  `buying` INTEGER NOT NULL DEFAULT 0,
  `currency` TEXT,
  `price_list_rate` INTEGER NOT NULL DEFAULT 0,
  `valid_from` TEXT,
  `valid_upto` TEXT
);
CREATE INDEX IF NOT EXISTS `idx_item_price_item` ON `tabItem Price` (`item_code`, `price_list`);

CREATE TABLE `tabHD Dynamic Pricing Rule` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `rule_name` TEXT NOT NULL,
  `description` TEXT,
  `priority` INTEGER NOT NULL DEFAULT 0 CHECK (`priority` BETWEEN 0 AND 1000),
  `is_active` INTEGER NOT NULL DEFAULT 1,
  `valid_from` TEXT,
  `valid_to` TEXT,
  `days_of_week` TEXT NOT NULL DEFAULT '',
  `time_from` TEXT,
  `time_to` TEXT,
  `time_zone` TEXT NOT NULL DEFAULT 'Asia/Kolkata',
  `festivals` TEXT NOT NULL,
  `customer_segments` TEXT NOT NULL,
  `territories` TEXT NOT NULL,
  `channels` TEXT NOT NULL,
  `min_qty` INTEGER,
  `max_qty` INTEGER,
  `min_amount` INTEGER,
  `max_amount` INTEGER,
  `discount_kind` TEXT,
  `discount_value` INTEGER,
  `tier_basis` TEXT,
  `max_discount_per_line` INTEGER,
  `is_exclusive` INTEGER NOT NULL DEFAULT 0,
  `currency` TEXT NOT NULL DEFAULT 'INR',
  CHECK (`valid_to` IS NULL OR `valid_from` IS NULL OR `valid_to` >= `valid_from`),
  CHECK (`tier_basis` IS NOT NULL OR (`discount_kind` IS NOT NULL AND `discount_value` >= 0))
);
CREATE INDEX `idx_pricing_rule_priority_active` ON `tabHD Dynamic Pricing Rule` (`priority`, `is_active`, `valid_from`, `valid_to`);

CREATE TABLE `tabHD Pricing Rule Item` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `parent` TEXT NOT NULL REFERENCES `tabHD Dynamic Pricing Rule` (`name`),
  `idx` INTEGER NOT NULL,
  `applies_to` TEXT NOT NULL,
  `item_code` TEXT,
  `item_group` TEXT,
  CHECK ((`applies_to` = 'Item' AND `item_code` IS NOT NULL)
    OR (`applies_to` = 'Item Group' AND `item_group` IS NOT NULL))
);
CREATE INDEX `idx_rule_item_parent` ON `tabHD Pricing Rule Item` (`parent`, `idx`);
CREATE INDEX `idx_rule_item_item` ON `tabHD Pricing Rule Item` (`item_code`);
CREATE INDEX `idx_rule_item_group` ON `tabHD Pricing Rule Item` (`item_group`);

CREATE TABLE `tabHD Pricing Rule Tier` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `parent` TEXT NOT NULL REFERENCES `tabHD Dynamic Pricing Rule` (`name`),
  `idx` INTEGER NOT NULL,
  `min_value` INTEGER NOT NULL,
  `max_value` INTEGER,
  `discount_kind` TEXT NOT NULL,
  `discount_value` INTEGER NOT NULL
);
CREATE INDEX `idx_rule_tier_parent` ON `tabHD Pricing Rule Tier` (`parent`, `idx`);

CREATE TABLE `tabHD Pricing Festival Window` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `festival` TEXT NOT NULL,
  `start_date` TEXT NOT NULL,
  `end_date` TEXT NOT NULL,
  CHECK (`end_date` >= `start_date`)
);
CREATE INDEX `idx_festival_window` ON `tabHD Pricing Festival Window` (`festival`, `start_date`);

CREATE TABLE `tabHD Price Quote` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `customer` TEXT NOT NULL,
  `channel` TEXT,
  `price_time` TEXT NOT NULL,
  `expires_at` TEXT NOT NULL,
  `currency` TEXT NOT NULL,
  `total` INTEGER NOT NULL,
  `status` TEXT NOT NULL DEFAULT 'Quoted' CHECK (`status` IN ('Quoted', 'Applied')),
  `applied_at` TEXT,
  `order_reference` TEXT,
  `payload` TEXT NOT NULL
);
CREATE INDEX `idx_quote_customer` ON `tabHD Price Quote` (`customer`, `creation`);
CREATE INDEX `idx_quote_expiry` ON `tabHD Price Quote` (`status`, `expires_at`);

CREATE TABLE `tabHD Pricing Rule Application` (
  `name` TEXT NOT NULL,
  `application_date` TEXT NOT NULL,
  `creation` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `rule` TEXT NOT NULL,
  `quote` TEXT NOT NULL,
  `line_index` INTEGER NOT NULL,
  `item_code` TEXT NOT NULL,
  `customer` TEXT NOT NULL,
  `order_reference` TEXT,
  `discount_amount` INTEGER NOT NULL,
  `currency` TEXT NOT NULL,
  PRIMARY KEY (`name`, `application_date`)
);
CREATE INDEX `idx_rule_application` ON `tabHD Pricing Rule Application` (`rule`, `application_date`);
CREATE INDEX `idx_application_quote` ON `tabHD Pricing Rule Application` (`quote`);

CREATE TABLE `tabHD Pricing Cache Version` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `version` INTEGER NOT NULL DEFAULT 0
);

INSERT INTO `tabHD Pricing Cache Version` (`name`, `version`) VALUES ('rules', 0);
