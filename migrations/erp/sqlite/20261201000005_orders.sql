-- Orders placed across the mesh by the Order service, their lines, and the
-- saga log each placement, cancellation and fulfilment writes as it goes.
-- An order's `saga_step` and `lease_until` say what is left to do and
-- until when the process working on it owns it; a process that finds an
-- unfinished order whose lease ran out finishes it. `version` makes every
-- save a compare-and-set, so two processes never both move one order.
-- Idempotency keys compare byte for byte (no case folding, no padding), as
-- on SQLite.

CREATE TABLE `tabHD Order` (
  `name` TEXT NOT NULL,
  `creation` TEXT NOT NULL,
  `modified` TEXT NOT NULL,
  `modified_by` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `docstatus` INTEGER NOT NULL DEFAULT 0,
  `customer` TEXT NOT NULL,
  `channel` TEXT NOT NULL,
  `set_warehouse` TEXT DEFAULT NULL,
  `status` TEXT NOT NULL,
  `saga_step` TEXT NOT NULL,
  `lease_until` TEXT NOT NULL,
  `version` INTEGER NOT NULL DEFAULT 0,
  `idempotency_key` TEXT NOT NULL,
  `attempt` INTEGER NOT NULL DEFAULT 1,
  `min_shelf_life_days` INTEGER NOT NULL DEFAULT 1,
  `request_hash` TEXT NOT NULL,
  `currency` TEXT DEFAULT NULL,
  `subtotal` INTEGER DEFAULT NULL,
  `total_discount` INTEGER DEFAULT NULL,
  `grand_total` INTEGER DEFAULT NULL,
  `quote` TEXT DEFAULT NULL,
  `price_tier` TEXT DEFAULT NULL,
  `primary_segment` TEXT DEFAULT NULL,
  `territory` TEXT DEFAULT NULL,
  `failure_code` INTEGER DEFAULT NULL,
  `failure_step` TEXT DEFAULT NULL,
  `failure_message` TEXT DEFAULT NULL,
  `placed_at` TEXT DEFAULT NULL,
  `cancelled_at` TEXT DEFAULT NULL,
  `fulfilled_at` TEXT DEFAULT NULL,
  `cancel_reason` TEXT DEFAULT NULL,
  PRIMARY KEY (`name`)
);
CREATE UNIQUE INDEX `uniq_order_idempotency` ON `tabHD Order` (`owner`, `idempotency_key`);
CREATE INDEX `idx_order_customer` ON `tabHD Order` (`customer`, `creation`);
CREATE INDEX `idx_order_status` ON `tabHD Order` (`status`, `creation`);
CREATE INDEX `idx_order_creation` ON `tabHD Order` (`creation`);
CREATE INDEX `idx_order_unfinished` ON `tabHD Order` (`status`, `lease_until`);

-- A line: what was asked, its price (with the rules that applied, as JSON),
-- its reservation and the batches reserved (as JSON).
CREATE TABLE `tabHD Order Item` (
  `name` TEXT NOT NULL,
  `creation` TEXT NOT NULL,
  `parent` TEXT NOT NULL,
  `idx` INTEGER NOT NULL,
  `item_code` TEXT NOT NULL,
  `qty` INTEGER NOT NULL,
  `uom` TEXT DEFAULT NULL,
  `rate` INTEGER DEFAULT NULL,
  `net_amount` INTEGER DEFAULT NULL,
  `pricing` TEXT DEFAULT NULL,
  `allocation` TEXT DEFAULT NULL,
  `batches` TEXT NOT NULL,
  PRIMARY KEY (`name`)
);
CREATE UNIQUE INDEX `uniq_order_item_line` ON `tabHD Order Item` (`parent`, `idx`);
CREATE INDEX `idx_order_item_item` ON `tabHD Order Item` (`item_code`);

-- What happened to an order, step by step, append-only.
CREATE TABLE `tabHD Order Saga Log` (
  `name` TEXT NOT NULL,
  `creation` TEXT NOT NULL,
  `parent` TEXT NOT NULL,
  `owner` TEXT NOT NULL,
  `status` TEXT NOT NULL,
  `saga_step` TEXT NOT NULL,
  `detail` TEXT DEFAULT NULL,
  PRIMARY KEY (`name`)
);
CREATE INDEX `idx_saga_log_order` ON `tabHD Order Saga Log` (`parent`, `creation`);
