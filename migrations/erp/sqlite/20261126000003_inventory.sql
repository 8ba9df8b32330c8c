-- Inventory and batch management (see the MariaDB migration of the same
-- version). Decimals are INTEGER counts of billionths (harsha_store::decimal);
-- dates are ISO 8601 text, times UTC. SQLite has no partitioning: the
-- movement table is one table here.

CREATE TABLE `tabHD Batch Master` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `batch_no` TEXT NOT NULL,
  `supplier` TEXT,
  `manufacturing_date` TEXT NOT NULL,
  `expiry_date` TEXT NOT NULL,
  `received_at` TEXT NOT NULL,
  `received_qty` INTEGER NOT NULL DEFAULT 0,
  `available_qty` INTEGER NOT NULL DEFAULT 0,
  `reserved_qty` INTEGER NOT NULL DEFAULT 0,
  `stock_uom` TEXT NOT NULL,
  `quality_grade` TEXT NOT NULL CHECK (`quality_grade` IN ('A', 'B', 'C')),
  `storage_temp_min` INTEGER,
  `storage_temp_max` INTEGER,
  `storage_humidity_min` INTEGER,
  `storage_humidity_max` INTEGER,
  `energy_kcal` INTEGER,
  `protein_g` INTEGER,
  `carbohydrate_g` INTEGER,
  `sugars_g` INTEGER,
  `fat_g` INTEGER,
  `saturated_fat_g` INTEGER,
  `sodium_mg` INTEGER,
  `allergens` TEXT NOT NULL DEFAULT '',
  `status` TEXT NOT NULL DEFAULT 'Active'
    CHECK (`status` IN ('Active', 'Quarantined', 'Expired', 'Consumed')),
  `status_reason` TEXT,
  CHECK (`expiry_date` > `manufacturing_date`),
  CHECK (`available_qty` >= 0 AND `reserved_qty` >= 0 AND `received_qty` >= 0)
);
CREATE UNIQUE INDEX `uniq_batch_item_warehouse` ON `tabHD Batch Master` (`item_code`, `batch_no`, `warehouse`);
CREATE INDEX `idx_batch_expiry_status` ON `tabHD Batch Master` (`expiry_date`, `status`, `available_qty`);
CREATE INDEX `idx_batch_fefo` ON `tabHD Batch Master` (`item_code`, `status`, `expiry_date`, `manufacturing_date`, `batch_no`);
CREATE INDEX `idx_batch_fifo` ON `tabHD Batch Master` (`item_code`, `status`, `received_at`);
CREATE INDEX `idx_batch_warehouse` ON `tabHD Batch Master` (`warehouse`, `status`, `item_code`);

CREATE TABLE `tabHD Batch Movement` (
  `name` TEXT NOT NULL,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `batch` TEXT NOT NULL REFERENCES `tabHD Batch Master` (`name`),
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `movement_type` TEXT NOT NULL CHECK (`movement_type` IN ('Receipt', 'Issue', 'Transfer Out',
    'Transfer In', 'Adjustment', 'Reservation', 'Release', 'Write Off')),
  `available_change` INTEGER NOT NULL,
  `reserved_change` INTEGER NOT NULL,
  `available_after` INTEGER NOT NULL,
  `reserved_after` INTEGER NOT NULL,
  `reason` TEXT,
  `reference_doctype` TEXT,
  `reference_name` TEXT,
  `allocation` TEXT,
  `transfer` TEXT,
  PRIMARY KEY (`name`, `creation`),
  CHECK (`available_after` >= 0 AND `reserved_after` >= 0)
);
CREATE INDEX `idx_movement_batch` ON `tabHD Batch Movement` (`batch`, `creation`);
CREATE INDEX `idx_movement_consumption` ON `tabHD Batch Movement` (`item_code`, `warehouse`, `movement_type`, `creation`);
CREATE INDEX `idx_movement_reference` ON `tabHD Batch Movement` (`reference_name`);

CREATE TRIGGER `trg_batch_movement_no_update` BEFORE UPDATE ON `tabHD Batch Movement`
BEGIN
  SELECT RAISE(ABORT, 'batch movements are append-only');
END;

CREATE TRIGGER `trg_batch_movement_no_delete` BEFORE DELETE ON `tabHD Batch Movement`
BEGIN
  SELECT RAISE(ABORT, 'batch movements are append-only');
END;

CREATE TABLE `tabHD Stock Allocation` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `request_id` TEXT UNIQUE,
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT,
  `requested_qty` INTEGER NOT NULL,
  `strategy` TEXT NOT NULL CHECK (`strategy` IN ('FEFO', 'FIFO')),
  `min_shelf_life_days` INTEGER NOT NULL DEFAULT 0,
  `min_grade` TEXT NOT NULL DEFAULT 'C',
  `status` TEXT NOT NULL DEFAULT 'Reserved'
    CHECK (`status` IN ('Reserved', 'Confirmed', 'Released', 'Expired')),
  `expires_at` TEXT NOT NULL,
  `reference_doctype` TEXT,
  `reference_name` TEXT
);
CREATE INDEX `idx_allocation_expiry` ON `tabHD Stock Allocation` (`status`, `expires_at`);
CREATE INDEX `idx_allocation_reference` ON `tabHD Stock Allocation` (`reference_name`);

CREATE TABLE `tabHD Stock Allocation Line` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `parent` TEXT NOT NULL REFERENCES `tabHD Stock Allocation` (`name`),
  `idx` INTEGER NOT NULL,
  `batch` TEXT NOT NULL REFERENCES `tabHD Batch Master` (`name`),
  `batch_no` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `expiry_date` TEXT NOT NULL,
  `quality_grade` TEXT NOT NULL,
  `qty` INTEGER NOT NULL
);
CREATE INDEX `idx_allocation_line_parent` ON `tabHD Stock Allocation Line` (`parent`, `idx`);

CREATE TABLE `tabHD Item Expiry Policy` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `critical_days` INTEGER NOT NULL,
  `warning_days` INTEGER NOT NULL,
  CHECK (`critical_days` >= 0 AND `warning_days` > `critical_days`)
);

CREATE TABLE `tabHD Batch Expiry Alert` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `batch` TEXT NOT NULL,
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `expiry_date` TEXT NOT NULL,
  `alert_level` TEXT NOT NULL CHECK (`alert_level` IN ('Expired', 'Critical', 'Warning')),
  `days_to_expiry` INTEGER NOT NULL,
  `on_hand_qty` INTEGER NOT NULL
);
CREATE UNIQUE INDEX `uniq_expiry_alert` ON `tabHD Batch Expiry Alert` (`batch`, `alert_level`);
CREATE INDEX `idx_expiry_alert_time` ON `tabHD Batch Expiry Alert` (`creation`);

CREATE TABLE `tabHD Storage Condition Reading` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `recorded_at` TEXT NOT NULL,
  `temperature` INTEGER,
  `humidity` INTEGER,
  `breached_batches` INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX `idx_storage_reading_warehouse` ON `tabHD Storage Condition Reading` (`warehouse`, `recorded_at`);

CREATE TABLE `tabHD Item Warehouse Optimization` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `idx` INTEGER NOT NULL DEFAULT 0,
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `reorder_level` INTEGER NOT NULL DEFAULT 0,
  `reorder_qty` INTEGER NOT NULL DEFAULT 0,
  `safety_stock` INTEGER NOT NULL DEFAULT 0,
  `lead_time_days` INTEGER NOT NULL DEFAULT 0,
  `min_qty` INTEGER NOT NULL DEFAULT 0,
  `max_qty` INTEGER NOT NULL DEFAULT 0,
  `consumption_window_days` INTEGER NOT NULL DEFAULT 30,
  `avg_daily_issue` INTEGER,
  `reorder_point` INTEGER,
  `usable_qty` INTEGER,
  `last_evaluated_at` TEXT,
  CHECK (`lead_time_days` >= 0 AND `consumption_window_days` > 0),
  CHECK (`reorder_level` >= 0 AND `reorder_qty` >= 0 AND `safety_stock` >= 0 AND `min_qty` >= 0
    AND (`max_qty` = 0 OR `max_qty` >= `min_qty`))
);
CREATE UNIQUE INDEX `uniq_item_warehouse` ON `tabHD Item Warehouse Optimization` (`item_code`, `warehouse`);

CREATE TABLE `tabHD Procurement Trigger` (
  `name` TEXT NOT NULL PRIMARY KEY,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `item_code` TEXT NOT NULL,
  `warehouse` TEXT NOT NULL,
  `usable_qty` INTEGER NOT NULL,
  `reorder_point` INTEGER NOT NULL,
  `suggested_qty` INTEGER NOT NULL,
  `status` TEXT NOT NULL DEFAULT 'Open' CHECK (`status` IN ('Open', 'Resolved')),
  `resolved_at` TEXT
);
CREATE UNIQUE INDEX `uniq_open_trigger` ON `tabHD Procurement Trigger` (`item_code`, `warehouse`) WHERE `status` = 'Open';
CREATE INDEX `idx_trigger_item` ON `tabHD Procurement Trigger` (`item_code`, `warehouse`, `creation`);
