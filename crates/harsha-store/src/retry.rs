//! Trying a write again when it lost a race: lock contention (deadlock,
//! lock-wait timeout, busy SQLite) or a concurrent insert that won a unique
//! key. Each service says which of its errors are worth another try.

use std::time::Duration;

/// How often a write is tried in all.
pub const ATTEMPTS: u32 = 4;

/// Runs `attempt` again, after a short pause growing by 5 ms, while it
/// fails with an error `retryable` accepts, up to [`ATTEMPTS`] times in all.
pub async fn with_retries<T, E, F, Fut>(
    retryable: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if retryable(&error) && tries < ATTEMPTS => {
                tracing::debug!(tries, "lost a race; trying again");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}
