-- Orders placed across the mesh by the Order service, their lines, and the
-- saga log each placement, cancellation and fulfilment writes as it goes.
-- An order's `saga_step` and `lease_until` say what is left to do and
-- until when the process working on it owns it; a process that finds an
-- unfinished order whose lease ran out finishes it. `version` makes every
-- save a compare-and-set, so two processes never both move one order.
-- Idempotency keys compare byte for byte (no case folding, no padding), as
-- on SQLite.

CREATE TABLE `tabHD Order` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) COLLATE utf8mb4_nopad_bin NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `customer` varchar(140) NOT NULL,
  `channel` varchar(40) NOT NULL,
  `set_warehouse` varchar(140) DEFAULT NULL,
  `status` varchar(20) NOT NULL,
  `saga_step` varchar(20) NOT NULL,
  `lease_until` datetime(6) NOT NULL,
  `version` bigint NOT NULL DEFAULT 0,
  `idempotency_key` varchar(140) COLLATE utf8mb4_nopad_bin NOT NULL,
  `attempt` int NOT NULL DEFAULT 1,
  `min_shelf_life_days` int NOT NULL DEFAULT 1,
  `request_hash` varchar(64) NOT NULL,
  `currency` varchar(3) DEFAULT NULL,
  `subtotal` decimal(21,9) DEFAULT NULL,
  `total_discount` decimal(21,9) DEFAULT NULL,
  `grand_total` decimal(21,9) DEFAULT NULL,
  `quote` varchar(140) DEFAULT NULL,
  `price_tier` varchar(140) DEFAULT NULL,
  `primary_segment` varchar(140) DEFAULT NULL,
  `territory` varchar(140) DEFAULT NULL,
  `failure_code` int DEFAULT NULL,
  `failure_step` varchar(20) DEFAULT NULL,
  `failure_message` text DEFAULT NULL,
  `placed_at` datetime(6) DEFAULT NULL,
  `cancelled_at` datetime(6) DEFAULT NULL,
  `fulfilled_at` datetime(6) DEFAULT NULL,
  `cancel_reason` text DEFAULT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_order_idempotency` (`owner`, `idempotency_key`),
  KEY `idx_order_customer` (`customer`, `creation`),
  KEY `idx_order_status` (`status`, `creation`),
  KEY `idx_order_creation` (`creation`),
  KEY `idx_order_unfinished` (`status`, `lease_until`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A line: what was asked, its price (with the rules that applied, as JSON),
-- its reservation and the batches reserved (as JSON).
CREATE TABLE `tabHD Order Item` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `parent` varchar(140) NOT NULL,
  `idx` int(8) NOT NULL,
  `item_code` varchar(140) NOT NULL,
  `qty` decimal(21,9) NOT NULL,
  `uom` varchar(140) DEFAULT NULL,
  `rate` decimal(21,9) DEFAULT NULL,
  `net_amount` decimal(21,9) DEFAULT NULL,
  `pricing` longtext DEFAULT NULL,
  `allocation` varchar(140) DEFAULT NULL,
  `batches` longtext NOT NULL,
  PRIMARY KEY (`name`),
  UNIQUE KEY `uniq_order_item_line` (`parent`, `idx`),
  KEY `idx_order_item_item` (`item_code`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What happened to an order, step by step, append-only.
CREATE TABLE `tabHD Order Saga Log` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `parent` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `status` varchar(20) NOT NULL,
  `saga_step` varchar(20) NOT NULL,
  `detail` text DEFAULT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_saga_log_order` (`parent`, `creation`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
