//! A request to place an order, checked once when it is made
//! ([`OrderRequest::parse`]): a customer, a channel, 1 to [`MAX_LINES`]
//! lines each of a distinct item and a positive quantity, and an
//! idempotency key. Its [`fingerprint`](OrderRequest::fingerprint) tells a
//! retry of the same request from a different request reusing the key.

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::{DocName, Quantity, ValueError};

/// The most lines an order may have.
pub const MAX_LINES: usize = 100;
/// The longest idempotency key.
const MAX_KEY: usize = 140;
/// The longest channel code.
const MAX_CHANNEL: usize = 40;

/// One line of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    /// The item.
    pub item_code: DocName,
    /// How much.
    pub qty: Quantity,
    /// The unit, when named.
    pub uom: Option<DocName>,
}

/// A valid request to place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The customer.
    pub customer: DocName,
    /// The channel code, upper-cased.
    pub channel: String,
    /// The warehouse stock is limited to, if any.
    pub warehouse: Option<DocName>,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// The lines.
    pub lines: Vec<LineRequest>,
}

/// A raw line, as it came.
#[derive(Debug, Clone, Default)]
pub struct RawLine<'a> {
    /// The item.
    pub item_code: &'a str,
    /// The quantity, a decimal string (empty when missing).
    pub qty: &'a str,
    /// The unit.
    pub uom: &'a str,
}

impl OrderRequest {
    /// Checks a request's fields; the error names the first bad one as the
    /// contract does (`lines[2].qty`).
    pub fn parse(
        customer: &str,
        channel: &str,
        warehouse: &str,
        idempotency_key: &str,
        lines: &[RawLine<'_>],
    ) -> Result<Self, (String, ValueError)> {
        fn field(name: &str) -> impl FnOnce(ValueError) -> (String, ValueError) + '_ {
            move |e| (name.to_owned(), e)
        }
        let customer = DocName::parse(customer).map_err(field("customer"))?;
        let channel = channel.trim().to_uppercase();
        harsha_types::check_text(&channel, MAX_CHANNEL, "the channel").map_err(field("channel"))?;
        if !channel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                "channel".into(),
                ValueError(format!(
                    "{channel:?} is not a channel code (letters, digits, - and _)"
                )),
            ));
        }
        let warehouse = (!warehouse.is_empty())
            .then(|| DocName::parse(warehouse))
            .transpose()
            .map_err(field("warehouse"))?;
        harsha_types::check_text(idempotency_key, MAX_KEY, "the idempotency key")
            .map_err(field("idempotency_key"))?;
        if lines.is_empty() {
            return Err((
                "lines".into(),
                ValueError("an order needs at least one line".into()),
            ));
        }
        if lines.len() > MAX_LINES {
            return Err((
                "lines".into(),
                ValueError(format!(
                    "an order has at most {MAX_LINES} lines, not {}",
                    lines.len()
                )),
            ));
        }
        let mut parsed: Vec<LineRequest> = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let item_code =
                DocName::parse(line.item_code).map_err(field(&format!("lines[{i}].item_code")))?;
            if let Some(first) = parsed.iter().position(|l| l.item_code == item_code) {
                return Err((
                    format!("lines[{i}].item_code"),
                    ValueError(format!(
                        "{item_code} is already on line {first}; put the whole quantity on one line"
                    )),
                ));
            }
            if line.qty.trim().is_empty() {
                return Err((
                    format!("lines[{i}].qty"),
                    ValueError("a quantity is required".into()),
                ));
            }
            let qty = Quantity::parse(line.qty).map_err(field(&format!("lines[{i}].qty")))?;
            let uom = (!line.uom.is_empty())
                .then(|| DocName::parse(line.uom))
                .transpose()
                .map_err(field(&format!("lines[{i}].uom")))?;
            parsed.push(LineRequest {
                item_code,
                qty,
                uom,
            });
        }
        Ok(Self {
            customer,
            channel,
            warehouse,
            idempotency_key: idempotency_key.to_owned(),
            lines: parsed,
        })
    }

    /// A digest of what the request asks for (not its key): equal for a
    /// retry, different for another order.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        let mut part = |value: &str| {
            hash.update(value.len().to_le_bytes());
            hash.update(value.as_bytes());
        };
        part(self.customer.as_str());
        part(&self.channel);
        part(self.warehouse.as_ref().map_or("", DocName::as_str));
        for line in &self.lines {
            part(line.item_code.as_str());
            part(&line.qty.get().normalize().to_string());
            part(line.uom.as_ref().map_or("", DocName::as_str));
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The total quantity ordered (for logs and metrics).
    pub fn total_qty(&self) -> Decimal {
        self.lines.iter().map(|l| l.qty.get()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(item: &'a str, qty: &'a str) -> RawLine<'a> {
        RawLine {
            item_code: item,
            qty,
            uom: "",
        }
    }

    fn parse(lines: &[RawLine<'_>]) -> Result<OrderRequest, (String, ValueError)> {
        OrderRequest::parse("CUST-1", "ecommerce", "", "key-1", lines)
    }

    #[test]
    fn a_valid_request_is_normalised() {
        let request = parse(&[line("KAJU-KATLI", "2.50")]).expect("valid");
        assert_eq!(request.channel, "ECOMMERCE");
        assert_eq!(request.lines[0].qty.get().to_string(), "2.5");
        assert_eq!(request.warehouse, None);
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |r: Result<OrderRequest, (String, ValueError)>| r.expect_err("invalid").0;
        assert_eq!(field(parse(&[])), "lines");
        assert_eq!(field(parse(&[line("A", "0")])), "lines[0].qty");
        assert_eq!(
            field(parse(&[line("A", "1"), line("B", "-2")])),
            "lines[1].qty"
        );
        assert_eq!(field(parse(&[line("A", "")])), "lines[0].qty");
        assert_eq!(field(parse(&[line("A", "abc")])), "lines[0].qty");
        assert_eq!(field(parse(&[line("", "1")])), "lines[0].item_code");
        assert_eq!(
            field(parse(&[line("A", "1"), line("A", "2")])),
            "lines[1].item_code"
        );
        assert_eq!(
            field(OrderRequest::parse("", "WEB", "", "k", &[line("A", "1")])),
            "customer"
        );
        assert_eq!(
            field(OrderRequest::parse("C", "", "", "k", &[line("A", "1")])),
            "channel"
        );
        assert_eq!(
            field(OrderRequest::parse("C", "WEB", "", "", &[line("A", "1")])),
            "idempotency_key"
        );
        let many: Vec<String> = (0..=MAX_LINES).map(|i| format!("I{i}")).collect();
        let lines: Vec<RawLine<'_>> = many.iter().map(|i| line(i, "1")).collect();
        assert_eq!(field(parse(&lines)), "lines");
    }

    #[test]
    fn the_fingerprint_ignores_the_key_and_formatting_but_not_the_order() {
        let a = parse(&[line("A", "2.0")]).expect("valid");
        let b = OrderRequest::parse("CUST-1", "ECOMMERCE", "", "other-key", &[line("A", "2")])
            .expect("valid");
        let c = parse(&[line("A", "3")]).expect("valid");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
