-- Minimal stand-ins for the ERPNext tables the Harsha extensions refer to
-- (see the MariaDB migration of the same version). Dates and times are ISO
-- 8601 text in UTC.

CREATE TABLE IF NOT EXISTS `tabCustomer` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `customer_name` TEXT,
  `customer_type` TEXT DEFAULT 'Company',
  `customer_group` TEXT,
  `territory` TEXT,
  `disabled` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS `tabTerritory` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `territory_name` TEXT,
  `parent_territory` TEXT,
  `is_group` INTEGER NOT NULL DEFAULT 0,
  `lft` INTEGER NOT NULL DEFAULT 0,
  `rgt` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS `tabItem` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `item_code` TEXT,
  `item_name` TEXT,
  `item_group` TEXT,
  `stock_uom` TEXT,
  `has_batch_no` INTEGER NOT NULL DEFAULT 0,
  `has_expiry_date` INTEGER NOT NULL DEFAULT 0,
  `shelf_life_in_days` INTEGER NOT NULL DEFAULT 0,
  `disabled` INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS `tabWarehouse` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT,
  `modified` TEXT,
  `modified_by` TEXT,
  `owner` TEXT,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `warehouse_name` TEXT,
  `parent_warehouse` TEXT,
  `is_group` INTEGER NOT NULL DEFAULT 0,
  `company` TEXT,
  `disabled` INTEGER NOT NULL DEFAULT 0
);
