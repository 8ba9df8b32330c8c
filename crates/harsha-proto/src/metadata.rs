//! Request metadata the services read, named once.

/// The metadata key naming the user a change is made for; the edge sets it
/// from the authenticated principal (and strips it from clients).
pub const ACTOR_METADATA: &str = "x-harsha-user";

/// The acting user named in a request's metadata, if any.
pub fn actor_name<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .metadata()
        .get(ACTOR_METADATA)
        .and_then(|value| value.to_str().ok())
}
