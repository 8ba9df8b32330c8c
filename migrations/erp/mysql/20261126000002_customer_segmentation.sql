-- Customer segmentation (the seed's "Customer Segmentation Module") and the
-- outbox every ERP service writes its changes to in the same transaction.

CREATE TABLE `tabHD Customer Segment` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `segment_name` varchar(140) NOT NULL,
  `description` text DEFAULT NULL,
  `status` varchar(140) NOT NULL DEFAULT 'Active',
  `service_level` varchar(140) NOT NULL DEFAULT 'Standard',
  `priority` int(11) NOT NULL DEFAULT 0,
  `price_tier` varchar(140) DEFAULT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_segment_status` (`status`, `name`),
  CONSTRAINT `chk_segment_status` CHECK (`status` IN ('Active', 'Inactive')),
  CONSTRAINT `chk_segment_priority` CHECK (`priority` BETWEEN 0 AND 1000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A customer's membership of a segment over [effective_from, effective_to).
-- `open_primary` is the customer for an active, open-ended primary
-- assignment and NULL otherwise; its unique key lets at most one such row
-- exist per customer, a constraint under the service's locking.
CREATE TABLE `tabHD Customer Segment Assignment` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `customer` varchar(140) NOT NULL,
  `segment` varchar(140) NOT NULL,
  `is_primary` int(1) NOT NULL DEFAULT 0,
  `effective_from` date NOT NULL,
  `effective_to` date DEFAULT NULL,
  `status` varchar(140) NOT NULL DEFAULT 'Active',
  `open_primary` varchar(140) AS (
    CASE WHEN `is_primary` = 1 AND `status` = 'Active' AND `effective_to` IS NULL
         THEN `customer` END
  ) PERSISTENT,
  PRIMARY KEY (`name`),
  KEY `idx_customer_segment_active` (`customer`, `is_primary`, `status`, `effective_from`),
  KEY `idx_segment_members` (`segment`, `status`, `customer`),
  UNIQUE KEY `uniq_open_primary` (`open_primary`),
  CONSTRAINT `fk_assignment_segment` FOREIGN KEY (`segment`) REFERENCES `tabHD Customer Segment` (`name`),
  CONSTRAINT `chk_assignment_range` CHECK (`effective_to` IS NULL OR `effective_to` >= `effective_from`),
  CONSTRAINT `chk_assignment_status` CHECK (`status` IN ('Active', 'Superseded'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE `tabHD Customer Territory Mapping` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `customer` varchar(140) NOT NULL,
  `territory` varchar(140) NOT NULL,
  `coverage_type` varchar(140) NOT NULL,
  `effective_from` date NOT NULL,
  `effective_to` date DEFAULT NULL,
  `price_tier` varchar(140) DEFAULT NULL,
  `service_level` varchar(140) DEFAULT NULL,
  `status` varchar(140) NOT NULL DEFAULT 'Active',
  `open_primary` varchar(140) AS (
    CASE WHEN `coverage_type` = 'Primary' AND `status` = 'Active' AND `effective_to` IS NULL
         THEN `customer` END
  ) PERSISTENT,
  PRIMARY KEY (`name`),
  KEY `idx_customer_territory_active` (`customer`, `coverage_type`, `status`, `effective_from`),
  KEY `idx_territory_customers` (`territory`, `status`, `customer`),
  UNIQUE KEY `uniq_open_primary_territory` (`open_primary`),
  CONSTRAINT `chk_mapping_range` CHECK (`effective_to` IS NULL OR `effective_to` >= `effective_from`),
  CONSTRAINT `chk_mapping_coverage` CHECK (`coverage_type` IN ('Primary', 'Secondary', 'Delivery')),
  CONSTRAINT `chk_mapping_status` CHECK (`status` IN ('Active', 'Superseded'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Changes waiting to be relayed to the Sync service's `sync_events`.
CREATE TABLE `tabHD Sync Outbox` (
  `name` varchar(140) NOT NULL,
  `creation` datetime(6) NOT NULL,
  `modified` datetime(6) NOT NULL,
  `modified_by` varchar(140) NOT NULL,
  `owner` varchar(140) NOT NULL,
  `docstatus` int(1) NOT NULL DEFAULT 0,
  `idx` int(8) NOT NULL DEFAULT 0,
  `source_service` varchar(140) NOT NULL,
  `entity_type` varchar(140) NOT NULL,
  `entity_name` varchar(140) NOT NULL,
  `event_type` varchar(140) NOT NULL,
  `payload` longtext NOT NULL,
  `occurred_at` datetime(6) NOT NULL,
  `correlation_id` varchar(140) DEFAULT NULL,
  `relayed_at` datetime(6) DEFAULT NULL,
  PRIMARY KEY (`name`),
  KEY `idx_outbox_pending` (`relayed_at`, `occurred_at`),
  KEY `idx_outbox_entity` (`entity_type`, `entity_name`, `occurred_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
