//! Who a customer is, for pricing: their segments, territories and price
//! tier on a date, from the Customer service's `ResolveCustomerProfile`
//! over gRPC, kept for a short time (a profile changes by effective-dated
//! assignments, not by the second) in a bounded cache.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use harsha_proto::{
    convert::date_to_proto,
    harsha::customer::v1::{
        ResolveCustomerProfileRequest, customer_service_client::CustomerServiceClient,
    },
};
use tonic::{Code as StatusCode, transport::Channel};

use crate::{
    PricingError,
    domain::{Code, CustomerFacts, DocName},
};

/// Where customer profiles come from.
#[async_trait::async_trait]
pub trait CustomerProfiles: Send + Sync + 'static {
    /// The customer's segments, territories and price tier on `on`.
    async fn facts(&self, customer: &DocName, on: NaiveDate)
    -> Result<CustomerFacts, PricingError>;
}

/// Profiles from the Customer service, cached for `ttl`.
pub struct GrpcCustomerProfiles {
    client: CustomerServiceClient<Channel>,
    api_key: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<(String, NaiveDate), (Instant, CustomerFacts)>>,
}

impl GrpcCustomerProfiles {
    /// Profiles from the Customer service at `endpoint` (connected on first
    /// use), each kept for `ttl`, at most `capacity` at a time. With
    /// `api_key`, calls carry it (`x-api-key`; it needs `customer:read`).
    pub fn new(
        endpoint: &str,
        ttl: Duration,
        capacity: usize,
        api_key: Option<&str>,
    ) -> Result<Self, PricingError> {
        let api_key = api_key
            .filter(|key| !key.is_empty())
            .map(|key| {
                key.parse().map_err(|_| {
                    PricingError::Unavailable("the customer API key is not valid metadata".into())
                })
            })
            .transpose()?;
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| {
                PricingError::Unavailable(format!("bad customer endpoint {endpoint:?}: {e}"))
            })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: CustomerServiceClient::new(channel),
            api_key,
            ttl,
            capacity,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &(String, NaiveDate)) -> Option<CustomerFacts> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, facts)| facts.clone())
    }

    fn remember(&self, key: (String, NaiveDate), facts: CustomerFacts) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.capacity {
                cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
                if cache.len() >= self.capacity {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), facts));
        }
    }
}

#[async_trait::async_trait]
impl CustomerProfiles for GrpcCustomerProfiles {
    async fn facts(
        &self,
        customer: &DocName,
        on: NaiveDate,
    ) -> Result<CustomerFacts, PricingError> {
        let key = (customer.to_string(), on);
        if let Some(facts) = self.cached(&key) {
            return Ok(facts);
        }
        let mut request = tonic::Request::new(ResolveCustomerProfileRequest {
            customer: customer.to_string(),
            at: Some(date_to_proto(on)),
        });
        if let Some(key) = &self.api_key {
            request.metadata_mut().insert("x-api-key", key.clone());
        }
        let profile = match self.client.clone().resolve_customer_profile(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == StatusCode::NotFound => {
                return Err(PricingError::invalid(
                    "customer",
                    format!("{customer:?} not found"),
                ));
            }
            Err(status) => {
                return Err(PricingError::Unavailable(format!(
                    "the customer service did not resolve {customer:?}: {}",
                    status.message()
                )));
            }
        };
        if profile.disabled {
            return Err(PricingError::FailedPrecondition(format!(
                "customer {customer:?} is disabled"
            )));
        }
        let facts = CustomerFacts {
            customer: profile.customer,
            segments: profile
                .segments
                .iter()
                .filter_map(|s| s.segment.as_ref())
                .filter_map(|s| Code::parse(&s.code).ok())
                .collect(),
            territories: profile
                .territories
                .into_iter()
                .map(|t| t.territory)
                .collect(),
            price_tier: (!profile.price_tier.is_empty()).then_some(profile.price_tier),
        };
        self.remember(key, facts.clone());
        Ok(facts)
    }
}
