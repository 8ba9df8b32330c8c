//! Items, the item-group tree they sit in (ERPNext's `tabItem Group`),
//! their base prices per price list, and the territory tree: what the
//! engine needs to know about the goods and the places.

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
    groups: std::collections::HashSet<String>,
    group_parents: HashMap<String, String>,
    territory_parents: HashMap<String, String>,
    prices: HashMap<(String, String), BasePrice>,
}

impl Catalogue {
    /// Adds an item in `group`.
    pub fn add_item(&mut self, item: &str, group: &str) {
        self.item_groups.insert(item.to_owned(), group.to_owned());
    }

    /// Adds a group under `parent` (empty for a root).
    pub fn add_group(&mut self, group: &str, parent: &str) {
        self.groups.insert(group.to_owned());
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

    /// A group and every group above it, nearest first.
    pub fn group_lineage<'a>(&'a self, group: &'a str) -> Vec<&'a str> {
        let mut lineage: Vec<&str> = Vec::new();
        let mut next = Some(group);
        while let Some(current) = next {
            if lineage.contains(&current) || lineage.len() > 64 {
                break;
            }
            lineage.push(current);
            next = self.group_parents.get(current).map(String::as_str);
        }
        lineage
    }

    /// Whether the item group exists.
    pub fn knows_group(&self, group: &str) -> bool {
        self.groups.contains(group) || self.group_parents.contains_key(group)
    }

    /// Adds a territory under `parent` (empty for a root).
    pub fn add_territory(&mut self, territory: &str, parent: &str) {
        if !parent.is_empty() && parent != territory {
            self.territory_parents
                .insert(territory.to_owned(), parent.to_owned());
        }
    }

    /// The territories and every territory above them, without repeats: a
    /// rule for a region covers the cities in it.
    pub fn territories_covering(&self, territories: &[String]) -> Vec<String> {
        let mut covering: Vec<String> = Vec::new();
        for territory in territories {
            let mut next = Some(territory.as_str());
            let mut steps = 0;
            while let Some(current) = next {
                if steps > 64 {
                    break;
                }
                if !covering.iter().any(|t| t == current) {
                    covering.push(current.to_owned());
                }
                next = self.territory_parents.get(current).map(String::as_str);
                steps += 1;
            }
        }
        covering
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
