//! Items, the item-group tree they sit in (ERPNext's `tabItem Group`), and
//! their base prices per price list: what the engine needs to know about
//! the goods.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::Serialize;

/// The price list used when the customer's price tier has no price for an
/// item (ERPNext's default selling list).
pub const STANDARD_PRICE_LIST: &str = "Standard Selling";

/// A base price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasePrice {
    /// The price list it comes from.
    pub price_list: String,
    /// Price per unit.
    pub rate: Decimal,
    /// Its currency.
    pub currency: String,
    /// The unit it is quoted in.
    pub uom: String,
}

/// Items with their groups and prices.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    item_groups: HashMap<String, String>,
    group_parents: HashMap<String, String>,
    prices: HashMap<(String, String), BasePrice>,
}

impl Catalogue {
    /// Adds an item in `group`.
    pub fn add_item(&mut self, item: &str, group: &str) {
        self.item_groups.insert(item.to_owned(), group.to_owned());
    }

    /// Adds a group under `parent` (empty for a root).
    pub fn add_group(&mut self, group: &str, parent: &str) {
        if !parent.is_empty() && parent != group {
            self.group_parents
                .insert(group.to_owned(), parent.to_owned());
        }
    }

    /// Sets an item's price in a price list.
    pub fn set_price(&mut self, item: &str, price: BasePrice) {
        self.prices
            .insert((item.to_owned(), price.price_list.clone()), price);
    }

    /// Whether the item exists.
    pub fn knows(&self, item: &str) -> bool {
        self.item_groups.contains_key(item)
    }

    /// The item's group and every group above it, nearest first (a cycle
    /// in the data stops the walk).
    pub fn groups_of(&self, item: &str) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        let mut next = self.item_groups.get(item).map(String::as_str);
        while let Some(group) = next {
            if groups.contains(&group) || groups.len() > 64 {
                break;
            }
            groups.push(group);
            next = self.group_parents.get(group).map(String::as_str);
        }
        groups
    }

    /// The base price of an item for a customer in `price_tier`: the tier's
    /// price list when it has the item, else the standard list.
    pub fn price_of(&self, item: &str, price_tier: Option<&str>) -> Option<&BasePrice> {
        price_tier
            .and_then(|tier| self.prices.get(&(item.to_owned(), tier.to_owned())))
            .or_else(|| {
                self.prices
                    .get(&(item.to_owned(), STANDARD_PRICE_LIST.to_owned()))
            })
    }
}
