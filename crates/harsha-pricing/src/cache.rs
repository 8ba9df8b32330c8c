//! The rule cache: every replica prices from an in-memory [`RuleBook`]
//! (active rules, festival windows, items, groups, territories, prices)
//! instead of reading rules per quote. It polls the store's cache version
//! (one tiny query) every `poll` interval and reloads when it moved, so a
//! rule saved on any replica is used everywhere within one interval; it
//! also reloads every `full_reload` interval, to pick up ERPNext-side
//! changes (items, groups, territories) that do not bump the version.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use crate::{PricingError, PricingStore, domain::RuleBook};

struct Loaded {
    book: Arc<RuleBook>,
    version: i64,
    at: Instant,
}

/// The in-memory rule book and what it was loaded from.
pub struct RuleCache {
    store: Arc<dyn PricingStore>,
    loaded: RwLock<Loaded>,
    full_reload: Duration,
}

impl RuleCache {
    /// Loads the book from `store`.
    pub async fn load(
        store: Arc<dyn PricingStore>,
        full_reload: Duration,
    ) -> Result<Arc<Self>, PricingError> {
        let version = store.cache_version().await?;
        let data = store.load_book().await?;
        let book = RuleBook::new(data.rules, data.festivals, data.catalogue);
        Ok(Arc::new(Self {
            store,
            loaded: RwLock::new(Loaded {
                book: Arc::new(book),
                version,
                at: Instant::now(),
            }),
            full_reload,
        }))
    }

    /// The book quotes price from now.
    pub fn current(&self) -> Arc<RuleBook> {
        match self.loaded.read() {
            Ok(loaded) => Arc::clone(&loaded.book),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().book),
        }
    }

    fn state(&self) -> (i64, Instant) {
        match self.loaded.read() {
            Ok(loaded) => (loaded.version, loaded.at),
            Err(poisoned) => {
                let loaded = poisoned.into_inner();
                (loaded.version, loaded.at)
            }
        }
    }

    /// Reloads now. The version is read before the data, so a change made
    /// in between is loaded again on the next poll, never missed.
    pub async fn reload(&self) -> Result<(), PricingError> {
        let version = self.store.cache_version().await?;
        let data = self.store.load_book().await?;
        let book = Arc::new(RuleBook::new(data.rules, data.festivals, data.catalogue));
        let mut loaded = match self.loaded.write() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Two reloads may overlap (a poll and a write on this replica): the
        // older snapshot never replaces a newer one.
        if version >= loaded.version {
            *loaded = Loaded {
                book,
                version,
                at: Instant::now(),
            };
        }
        Ok(())
    }

    /// Reloads if the store's version moved or the full-reload interval
    /// passed; returns whether it reloaded.
    pub async fn refresh(&self) -> Result<bool, PricingError> {
        let (version, at) = self.state();
        let stale = at.elapsed() >= self.full_reload;
        if stale || self.store.cache_version().await? != version {
            self.reload().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Polls every `poll` until `shutdown` completes.
    pub async fn run(self: Arc<Self>, poll: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {
                    if let Err(error) = self.refresh().await {
                        tracing::warn!(error = %harsha_store::status::error_chain(&error), "rule cache refresh failed");
                    }
                }
            }
        }
    }
}
