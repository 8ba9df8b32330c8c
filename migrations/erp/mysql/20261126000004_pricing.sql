-- Dynamic pricing (the seed's "Dynamic Pricing Module"), with stand-ins for
-- the ERPNext tables it reads (`tabItem Group`, `tabItem Price`), created
-- only where ERPNext is absent. Amounts are decimal(21,9); times are UTC
-- except the rules' local dates and times, read in each rule's time zone.

CREATE TABLE IF NOT EXISTS `tabItem Group` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) DEFAULT NULL,
  `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL,
  `owner` varchar(140) DEFAULT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `item_group_name` varchar(140) DEFAULT NULL,
  `parent_item_group` varchar(140) DEFAULT NULL,
  `is_group` int(1) NOT NULL DEFAULT 0,
  `lft` int(11) NOT NULL DEFAULT 0,
  `rgt` int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (`name`),
  KEY `parent_item_group` (`parent_item_group`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `tabItem Price` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) DEFAULT NULL,
  `modified` datetime(6) DEFAULT NULL,
  `modified_by` varchar(140) DEFAULT NULL,
  `owner` varchar(140) DEFAULT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `item_code` varchar(140) DEFAULT NULL,
  `uom` varchar(140) DEFAULT NULL,
  `price_list` varchar(140) DEFAULT NULL,
  `selling` int(1) NOT NULL DEFAULT 1,
  `buying` int(1) NOT NULL DEFAULT 0,
  `currency` varchar(140) DEFAULT NULL,
  `price_list_rate` decimal(21,9) NOT NULL DEFAULT 0,
  `valid_from` date DEFAULT NULL,
  `valid_upto` date DEFAULT NULL,
  PRIMARY KEY (`name`),
  KEY `item_code` (`item_code`),
  KEY `price_list` (`price_list`),
  KEY `modified` (`modified`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A rule. Lists of segments, territories, channels and festivals are JSON
-- arrays and days a comma-separated list (Mon,Tue,...): the service reads
-- every active rule into memory and matches there, so none of them is a
-- query predicate.
CREATE TABLE `tabHD Dynamic Pricing Rule` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `rule_name` varchar(140) NOT NULL,
  `description` text DEFAULT NULL,
  `priority` int(11) NOT NULL DEFAULT 0,
  `is_active` int(1) NOT NULL DEFAULT 1,
  `valid_from` date DEFAULT NULL,
  `valid_to` date DEFAULT NULL,
  `days_of_week` varchar(140) NOT NULL DEFAULT '',
  `time_from` time DEFAULT NULL,
  `time_to` time DEFAULT NULL,
  `time_zone` varchar(140) NOT NULL DEFAULT 'Asia/Kolkata',
  `festivals` text NOT NULL,
  `customer_segments` text NOT NULL,
  `territories` text NOT NULL,
  `channels` text NOT NULL,
  `min_qty` decimal(21,9) DEFAULT NULL,
  `max_qty` decimal(21,9) DEFAULT NULL,
  `min_amount` decimal(21,9) DEFAULT NULL,
  `max_amount` decimal(21,9) DEFAULT NULL,
  `discount_kind` varchar(140) DEFAULT NULL,
  `discount_value` decimal(21,9) DEFAULT NULL,
  `tier_basis` varchar(140) DEFAULT NULL,
  `max_discount_per_line` decimal(21,9) DEFAULT NULL,
  `is_exclusive` int(1) NOT NULL DEFAULT 0,
  `currency` varchar(3) NOT NULL DEFAULT 'INR',
  PRIMARY KEY (`name`),
  KEY `idx_pricing_rule_priority_active` (`priority`, `is_active`, `valid_from`, `valid_to`),
  CONSTRAINT `chk_rule_priority` CHECK (`priority` BETWEEN 0 AND 1000),
  CONSTRAINT `chk_rule_validity` CHECK (`valid_to` IS NULL OR `valid_from` IS NULL OR `valid_to` >= `valid_from`),
  CONSTRAINT `chk_rule_discount` CHECK (`tier_basis` IS NOT NULL OR (`discount_kind` IS NOT NULL AND `discount_value` >= 0))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `tabHD Pricing Rule Item` (
  `name` varchar(140) NOT NULL,
  `parent` varchar(140) NOT NULL,
  `idx` int(8) NOT NULL,
  `applies_to` varchar(140) NOT NULL,
  `item_code` varchar(140) DEFAULT NULL,
  `item_group` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_rule_item_parent` (`parent`, `idx`),
  KEY `idx_rule_item_item` (`item_code`),
  KEY `idx_rule_item_group` (`item_group`),
  CONSTRAINT `fk_rule_item_rule` FOREIGN KEY (`parent`) REFERENCES `tabHD Dynamic Pricing Rule` (`name`),
  CONSTRAINT `chk_rule_item_target` CHECK ((`applies_to` = 'Item' AND `item_code` IS NOT NULL)
    OR (`applies_to` = 'Item Group' AND `item_group` IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `tabHD Pricing Rule Tier` (
  `name` varchar(140) NOT NULL,
  `parent` varchar(140) NOT NULL,
  `idx` int(8) NOT NULL,
  `min_value` decimal(21,9) NOT NULL,
  `max_value` decimal(21,9) DEFAULT NULL,
  `discount_kind` varchar(140) NOT NULL,
  `discount_value` decimal(21,9) NOT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_rule_tier_parent` (`parent`, `idx`),
  CONSTRAINT `fk_rule_tier_rule` FOREIGN KEY (`parent`) REFERENCES `tabHD Dynamic Pricing Rule` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Festivals and seasons: named, inclusive date windows, year by year.
CREATE TABLE `tabHD Pricing Festival Window` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `festival` varchar(140) NOT NULL,
  `start_date` date NOT NULL,
  `end_date` date NOT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_festival_window` (`festival`, `start_date`),
  CONSTRAINT `chk_festival_window` CHECK (`end_date` >= `start_date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A priced cart, kept so that applying it charges the quoted prices.
CREATE TABLE `tabHD Price Quote` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `customer` varchar(140) NOT NULL,
  `channel` varchar(140) DEFAULT NULL,
  `price_time` datetime(6) NOT NULL,
  `expires_at` datetime(6) NOT NULL,
  `currency` varchar(3) NOT NULL,
  `total` decimal(21,9) NOT NULL,
  `status` varchar(140) NOT NULL DEFAULT 'Quoted',
  `applied_at` datetime(6) DEFAULT NULL,
  `order_reference` varchar(140) DEFAULT NULL,
  `payload` longtext NOT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_quote_customer` (`customer`, `creation`),
  KEY `idx_quote_expiry` (`status`, `expires_at`),
  CONSTRAINT `chk_quote_status` CHECK (`status` IN ('Quoted', 'Applied'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One rule applied to one line of an order. Partitioned by month of the
-- application date, as the seed asks (the partition key is part of the
-- primary key; no foreign keys on a partitioned table).
CREATE TABLE `tabHD Pricing Rule Application` (
  `name` varchar(140) NOT NULL,
  `application_date` date NOT NULL,
  `creation` datetime(6) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `rule` varchar(140) NOT NULL,
  `quote` varchar(140) NOT NULL,
  `line_index` int(11) NOT NULL,
  `item_code` varchar(140) NOT NULL,
  `customer` varchar(140) NOT NULL,
  `order_reference` varchar(140) DEFAULT NULL,
  `discount_amount` decimal(21,9) NOT NULL,
  `currency` varchar(3) NOT NULL,
  PRIMARY KEY (`name`, `application_date`),
  KEY `idx_rule_application` (`rule`, `application_date`),
  KEY `idx_application_quote` (`quote`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS(`application_date`) (
  PARTITION `p_history` VALUES LESS THAN ('2026-11-01'),
  PARTITION `p_future` VALUES LESS THAN (MAXVALUE)
);

-- Bumped in the same transaction as every change to rules, festivals and
-- prices; each replica polls it and reloads its rule cache when it moves.
CREATE TABLE `tabHD Pricing Cache Version` (
  `name` varchar(140) NOT NULL,
  `version` bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO `tabHD Pricing Cache Version` (`name`, `version`) VALUES ('rules', 0);
