-- Inventory and batch management (the seed's "Inventory & Batch Management
-- Module"). Quantities are decimal(21,9); times are UTC.

-- One row per batch of an item held in one warehouse. A batch number moved
-- to another warehouse gets a row there with the same attributes.
-- available_qty + reserved_qty is the stock on hand; both always equal the
-- sums of the batch's movements.
CREATE TABLE `tabHD Batch Master` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `batch_no` varchar(140) NOT NULL,
  `supplier` varchar(140) DEFAULT NULL,
  `manufacturing_date` date NOT NULL,
  `expiry_date` date NOT NULL,
  `received_at` datetime(6) NOT NULL,
  `received_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `available_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `reserved_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `stock_uom` varchar(140) NOT NULL,
  `quality_grade` varchar(1) NOT NULL,
  `storage_temp_min` decimal(6,2) DEFAULT NULL,
  `storage_temp_max` decimal(6,2) DEFAULT NULL,
  `storage_humidity_min` decimal(5,2) DEFAULT NULL,
  `storage_humidity_max` decimal(5,2) DEFAULT NULL,
  `energy_kcal` decimal(21,9) DEFAULT NULL,
  `protein_g` decimal(21,9) DEFAULT NULL,
  `carbohydrate_g` decimal(21,9) DEFAULT NULL,
  `sugars_g` decimal(21,9) DEFAULT NULL,
  `fat_g` decimal(21,9) DEFAULT NULL,
  `saturated_fat_g` decimal(21,9) DEFAULT NULL,
  `sodium_mg` decimal(21,9) DEFAULT NULL,
  `allergens` varchar(500) NOT NULL DEFAULT '',
  `status` varchar(140) NOT NULL DEFAULT 'Active',
  `status_reason` text DEFAULT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_batch_item_warehouse` (`item_code`, `batch_no`, `warehouse`),
  KEY `idx_batch_expiry_status` (`expiry_date`, `status`, `available_qty`),
  KEY `idx_batch_fefo` (`item_code`, `status`, `expiry_date`, `manufacturing_date`, `batch_no`),
  KEY `idx_batch_fifo` (`item_code`, `status`, `received_at`),
  KEY `idx_batch_warehouse` (`warehouse`, `status`, `item_code`),
  CONSTRAINT `chk_batch_dates` CHECK (`expiry_date` > `manufacturing_date`),
  CONSTRAINT `chk_batch_grade` CHECK (`quality_grade` IN ('A', 'B', 'C')),
  CONSTRAINT `chk_batch_status` CHECK (`status` IN ('Active', 'Quarantined', 'Expired', 'Consumed')),
  CONSTRAINT `chk_batch_quantities` CHECK (`available_qty` >= 0 AND `reserved_qty` >= 0 AND `received_qty` >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every change to a batch's quantities, never updated or deleted. Partitioned
-- by month of `creation` (so the partition key is part of the primary key,
-- and no foreign keys: InnoDB has none on partitioned tables). The service
-- adds monthly partitions ahead of time by splitting `p_future`; rows are
-- never lost if it does not (they land in `p_future`).
CREATE TABLE `tabHD Batch Movement` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `batch` varchar(140) NOT NULL,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `movement_type` varchar(140) NOT NULL,
  `available_change` decimal(21,9) NOT NULL,
  `reserved_change` decimal(21,9) NOT NULL,
  `available_after` decimal(21,9) NOT NULL,
  `reserved_after` decimal(21,9) NOT NULL,
  `reason` text DEFAULT NULL,
  `reference_doctype` varchar(140) DEFAULT NULL,
  `reference_name` varchar(140) DEFAULT NULL,
  `allocation` varchar(140) DEFAULT NULL,
  `transfer` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`, `creation`),
  KEY `idx_movement_batch` (`batch`, `creation`),
  KEY `idx_movement_consumption` (`item_code`, `warehouse`, `movement_type`, `creation`),
  KEY `idx_movement_reference` (`reference_name`),
  CONSTRAINT `chk_movement_type` CHECK (`movement_type` IN ('Receipt', 'Issue', 'Transfer Out', 'Transfer In',
    'Adjustment', 'Reservation', 'Release', 'Write Off')),
  CONSTRAINT `chk_movement_balance` CHECK (`available_after` >= 0 AND `reserved_after` >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS(`creation`) (
  PARTITION `p_history` VALUES LESS THAN ('2026-11-01'),
  PARTITION `p_future` VALUES LESS THAN (MAXVALUE)
);

CREATE TRIGGER `trg_batch_movement_no_update` BEFORE UPDATE ON `tabHD Batch Movement`
FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'batch movements are append-only';

CREATE TRIGGER `trg_batch_movement_no_delete` BEFORE DELETE ON `tabHD Batch Movement`
FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'batch movements are append-only';

-- A reservation of stock for one request, split across batches (the lines).
-- `request_id` makes AllocateStock idempotent for a caller that retries.
CREATE TABLE `tabHD Stock Allocation` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `request_id` varchar(140) DEFAULT NULL,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) DEFAULT NULL,
  `requested_qty` decimal(21,9) NOT NULL,
  `strategy` varchar(140) NOT NULL,
  `min_shelf_life_days` int(11) NOT NULL DEFAULT 0,
  `min_grade` varchar(1) NOT NULL DEFAULT 'C',
  `status` varchar(140) NOT NULL DEFAULT 'Reserved',
  `expires_at` datetime(6) NOT NULL,
  `reference_doctype` varchar(140) DEFAULT NULL,
  `reference_name` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_allocation_request` (`request_id`),
  KEY `idx_allocation_expiry` (`status`, `expires_at`),
  KEY `idx_allocation_reference` (`reference_name`),
  CONSTRAINT `chk_allocation_strategy` CHECK (`strategy` IN ('FEFO', 'FIFO')),
  CONSTRAINT `chk_allocation_status` CHECK (`status` IN ('Reserved', 'Confirmed', 'Released', 'Expired'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `tabHD Stock Allocation Line` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `parent` varchar(140) NOT NULL,
  `idx` int(8) NOT NULL,
  `batch` varchar(140) NOT NULL,
  `batch_no` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `expiry_date` date NOT NULL,
  `quality_grade` varchar(1) NOT NULL,
  `qty` decimal(21,9) NOT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_allocation_line_parent` (`parent`, `idx`),
  CONSTRAINT `fk_allocation_line_parent` FOREIGN KEY (`parent`) REFERENCES `tabHD Stock Allocation` (`name`),
  CONSTRAINT `fk_allocation_line_batch` FOREIGN KEY (`batch`) REFERENCES `tabHD Batch Master` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Expiry alert thresholds of an item, overriding the service's defaults.
CREATE TABLE `tabHD Item Expiry Policy` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `critical_days` int(11) NOT NULL,
  `warning_days` int(11) NOT NULL,
  PRIMARY KEY (`name`),
  CONSTRAINT `chk_expiry_policy_days` CHECK (`critical_days` >= 0 AND `warning_days` > `critical_days`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One alert per batch and level, ever: the unique key makes a re-run of the
-- expiry scan add nothing.
CREATE TABLE `tabHD Batch Expiry Alert` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `batch` varchar(140) NOT NULL,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `expiry_date` date NOT NULL,
  `alert_level` varchar(140) NOT NULL,
  `days_to_expiry` int(11) NOT NULL,
  `on_hand_qty` decimal(21,9) NOT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_expiry_alert` (`batch`, `alert_level`),
  KEY `idx_expiry_alert_time` (`creation`),
  CONSTRAINT `chk_expiry_alert_level` CHECK (`alert_level` IN ('Expired', 'Critical', 'Warning'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Temperature and humidity readings per warehouse.
CREATE TABLE `tabHD Storage Condition Reading` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `recorded_at` datetime(6) NOT NULL,
  `temperature` decimal(6,2) DEFAULT NULL,
  `humidity` decimal(5,2) DEFAULT NULL,
  `breached_batches` int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (`name`),
  KEY `idx_storage_reading_warehouse` (`warehouse`, `recorded_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Stock optimisation parameters of an item in a warehouse, and what the last
-- evaluation computed.
CREATE TABLE `tabHD Item Warehouse Optimization` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `reorder_level` decimal(21,9) NOT NULL DEFAULT 0,
  `reorder_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `safety_stock` decimal(21,9) NOT NULL DEFAULT 0,
  `lead_time_days` int(11) NOT NULL DEFAULT 0,
  `min_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `max_qty` decimal(21,9) NOT NULL DEFAULT 0,
  `consumption_window_days` int(11) NOT NULL DEFAULT 30,
  `avg_daily_issue` decimal(21,9) DEFAULT NULL,
  `reorder_point` decimal(21,9) DEFAULT NULL,
  `usable_qty` decimal(21,9) DEFAULT NULL,
  `last_evaluated_at` datetime(6) DEFAULT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_item_warehouse` (`item_code`, `warehouse`),
  CONSTRAINT `chk_optimization_days` CHECK (`lead_time_days` >= 0 AND `consumption_window_days` > 0),
  CONSTRAINT `chk_optimization_quantities` CHECK (`reorder_level` >= 0 AND `reorder_qty` >= 0
    AND `safety_stock` >= 0 AND `min_qty` >= 0 AND (`max_qty` = 0 OR `max_qty` >= `min_qty`))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A request to buy more of an item for a warehouse. At most one is open per
-- item and warehouse (`open_key`); it resolves when usable stock recovers.
CREATE TABLE `tabHD Procurement Trigger` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `item_code` varchar(140) NOT NULL,
  `warehouse` varchar(140) NOT NULL,
  `usable_qty` decimal(21,9) NOT NULL,
  `reorder_point` decimal(21,9) NOT NULL,
  `suggested_qty` decimal(21,9) NOT NULL,
  `status` varchar(140) NOT NULL DEFAULT 'Open',
  `resolved_at` datetime(6) DEFAULT NULL,
  `open_key` varchar(300) AS (
    CASE WHEN `status` = 'Open' THEN CONCAT(`item_code`, '|', `warehouse`) END
  ) PERSISTENT,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_open_trigger` (`open_key`),
  KEY `idx_trigger_item` (`item_code`, `warehouse`, `creation`),
  CONSTRAINT `chk_trigger_status` CHECK (`status` IN ('Open', 'Resolved'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
