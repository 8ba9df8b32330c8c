//! The `harsha.customer.v1.CustomerService` server: converts requests into
//! validated domain values (naming the field that is wrong), calls the
//! store, converts results back, and maps [`CustomerError`] to a gRPC
//! status in one place.

use std::sync::{Arc, OnceLock};

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use harsha_proto::{
    convert::{date_from_proto, date_to_proto, naive_utc_to_proto},
    google::r#type::Date,
    harsha::customer::v1::{self as pb, customer_service_server::CustomerService},
    metadata::actor_name,
};
use harsha_store::{page::page_size, status::store_status};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    CustomerError, CustomerStore,
    domain::{
        Actor, Assignment, AssignmentStatus, CoverageType, CustomerSegment, Description, DocName,
        EffectiveRange, NewAssignment, NewSegment, NewTerritoryMapping, Priority, ProfileSource,
        Segment, SegmentCode, SegmentName, SegmentPatch, SegmentStatus, ServiceLevel,
        TerritoryMapping, ValueError,
    },
};

pub use harsha_proto::harsha::customer::v1::customer_service_server::CustomerServiceServer;

pub use harsha_proto::metadata::ACTOR_METADATA;

/// Where the store appears once the database is connected and migrated;
/// until then every call answers `UNAVAILABLE`.
pub type StoreSlot = Arc<OnceLock<Arc<dyn CustomerStore>>>;

/// The Customer gRPC service.
#[derive(Clone)]
pub struct CustomerGrpc {
    store: StoreSlot,
    time_zone: Tz,
}

impl CustomerGrpc {
    /// A service reading its store from `store` and taking "today" in
    /// `time_zone`.
    pub fn new(store: StoreSlot, time_zone: Tz) -> Self {
        Self { store, time_zone }
    }

    /// A service on a store that is ready now.
    pub fn with_store(store: Arc<dyn CustomerStore>, time_zone: Tz) -> Self {
        let slot = StoreSlot::default();
        let _ = slot.set(store);
        Self::new(slot, time_zone)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> CustomerServiceServer<Self> {
        CustomerServiceServer::new(self)
    }

    fn store(&self) -> Result<&Arc<dyn CustomerStore>, CustomerError> {
        self.store.get().ok_or(CustomerError::NotReady)
    }

    fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.time_zone).date_naive()
    }

    fn date_or_today(&self, date: Option<&Date>, field: &str) -> Result<NaiveDate, CustomerError> {
        date.map_or_else(
            || Ok(self.today()),
            |date| date_from_proto(date).map_err(|e| CustomerError::invalid(field, e)),
        )
    }
}

fn actor<T>(request: &Request<T>) -> Actor {
    actor_name(request).map_or_else(Actor::system, Actor::named)
}

fn field(name: &'static str) -> impl FnOnce(ValueError) -> CustomerError {
    move |error| CustomerError::invalid(name, error)
}

fn parse_code(value: &str, name: &'static str) -> Result<SegmentCode, CustomerError> {
    SegmentCode::parse(value).map_err(field(name))
}

fn parse_name(value: &str, name: &'static str) -> Result<DocName, CustomerError> {
    DocName::parse(value).map_err(field(name))
}

fn optional_tier(value: &str, name: &'static str) -> Result<Option<SegmentCode>, CustomerError> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse_code(value, name).map(Some)
    }
}

fn range(from: NaiveDate, to: Option<&Date>) -> Result<EffectiveRange, CustomerError> {
    let to = to
        .map(|to| date_from_proto(to).map_err(|e| CustomerError::invalid("effective_to", e)))
        .transpose()?;
    EffectiveRange::new(from, to).map_err(field("effective_to"))
}

fn service_level_from(
    value: i32,
    name: &'static str,
) -> Result<Option<ServiceLevel>, CustomerError> {
    match pb::ServiceLevel::try_from(value) {
        Ok(pb::ServiceLevel::Unspecified) => Ok(None),
        Ok(pb::ServiceLevel::Standard) => Ok(Some(ServiceLevel::Standard)),
        Ok(pb::ServiceLevel::Priority) => Ok(Some(ServiceLevel::Priority)),
        Ok(pb::ServiceLevel::Premium) => Ok(Some(ServiceLevel::Premium)),
        Err(_) => Err(CustomerError::invalid(
            name,
            format!("{value} is not a service level"),
        )),
    }
}

fn service_level_to(level: ServiceLevel) -> pb::ServiceLevel {
    match level {
        ServiceLevel::Standard => pb::ServiceLevel::Standard,
        ServiceLevel::Priority => pb::ServiceLevel::Priority,
        ServiceLevel::Premium => pb::ServiceLevel::Premium,
    }
}

fn segment_status_to(status: SegmentStatus) -> pb::SegmentStatus {
    match status {
        SegmentStatus::Active => pb::SegmentStatus::Active,
        SegmentStatus::Inactive => pb::SegmentStatus::Inactive,
    }
}

fn assignment_status_to(status: AssignmentStatus) -> pb::AssignmentStatus {
    match status {
        AssignmentStatus::Active => pb::AssignmentStatus::Active,
        AssignmentStatus::Superseded => pb::AssignmentStatus::Superseded,
    }
}

fn coverage_from(value: i32) -> Result<CoverageType, CustomerError> {
    match pb::CoverageType::try_from(value) {
        Ok(pb::CoverageType::Primary) => Ok(CoverageType::Primary),
        Ok(pb::CoverageType::Secondary) => Ok(CoverageType::Secondary),
        Ok(pb::CoverageType::Delivery) => Ok(CoverageType::Delivery),
        Ok(pb::CoverageType::Unspecified) => Err(CustomerError::invalid(
            "coverage_type",
            "a coverage type is required",
        )),
        Err(_) => Err(CustomerError::invalid(
            "coverage_type",
            format!("{value} is not a coverage type"),
        )),
    }
}

fn coverage_to(coverage: CoverageType) -> pb::CoverageType {
    match coverage {
        CoverageType::Primary => pb::CoverageType::Primary,
        CoverageType::Secondary => pb::CoverageType::Secondary,
        CoverageType::Delivery => pb::CoverageType::Delivery,
    }
}

fn source_to(source: ProfileSource) -> pb::ProfileSource {
    match source {
        ProfileSource::Default => pb::ProfileSource::Default,
        ProfileSource::PrimarySegment => pb::ProfileSource::PrimarySegment,
        ProfileSource::PrimaryTerritory => pb::ProfileSource::PrimaryTerritory,
    }
}

fn segment_to_proto(segment: Segment) -> pb::Segment {
    pb::Segment {
        code: segment.code.to_string(),
        segment_name: segment.segment_name.as_str().to_owned(),
        description: segment.description.as_str().to_owned(),
        status: segment_status_to(segment.status).into(),
        service_level: service_level_to(segment.service_level).into(),
        priority: segment.priority.get(),
        price_tier: segment
            .price_tier
            .map(|t| t.to_string())
            .unwrap_or_default(),
        create_time: Some(naive_utc_to_proto(segment.created)),
        update_time: Some(naive_utc_to_proto(segment.modified)),
    }
}

fn assignment_to_proto(assignment: Assignment) -> pb::SegmentAssignment {
    pb::SegmentAssignment {
        assignment_id: assignment.id,
        customer: assignment.customer.to_string(),
        segment_code: assignment.segment.to_string(),
        is_primary: assignment.is_primary,
        effective_from: Some(date_to_proto(assignment.range.from())),
        effective_to: assignment.range.to().map(date_to_proto),
        status: assignment_status_to(assignment.status).into(),
        create_time: Some(naive_utc_to_proto(assignment.created)),
        update_time: Some(naive_utc_to_proto(assignment.modified)),
    }
}

fn customer_segment_to_proto(member: CustomerSegment) -> pb::CustomerSegment {
    pb::CustomerSegment {
        assignment: Some(assignment_to_proto(member.assignment)),
        segment: Some(segment_to_proto(member.segment)),
    }
}

fn mapping_to_proto(mapping: TerritoryMapping) -> pb::TerritoryMapping {
    pb::TerritoryMapping {
        mapping_id: mapping.id,
        customer: mapping.customer.to_string(),
        territory: mapping.territory.to_string(),
        coverage_type: coverage_to(mapping.coverage).into(),
        effective_from: Some(date_to_proto(mapping.range.from())),
        effective_to: mapping.range.to().map(date_to_proto),
        price_tier: mapping
            .price_tier
            .map(|t| t.to_string())
            .unwrap_or_default(),
        service_level: mapping
            .service_level
            .map_or(pb::ServiceLevel::Unspecified, service_level_to)
            .into(),
        status: assignment_status_to(mapping.status).into(),
        create_time: Some(naive_utc_to_proto(mapping.created)),
        update_time: Some(naive_utc_to_proto(mapping.modified)),
    }
}

fn new_segment(segment: pb::Segment) -> Result<NewSegment, CustomerError> {
    Ok(NewSegment {
        code: parse_code(&segment.code, "segment.code")?,
        segment_name: SegmentName::parse(&segment.segment_name)
            .map_err(field("segment.segment_name"))?,
        description: Description::parse(&segment.description)
            .map_err(field("segment.description"))?,
        service_level: service_level_from(segment.service_level, "segment.service_level")?
            .unwrap_or(ServiceLevel::Standard),
        priority: Priority::new(segment.priority).map_err(field("segment.priority"))?,
        price_tier: optional_tier(&segment.price_tier, "segment.price_tier")?,
    })
}

fn segment_patch(
    segment: &pb::Segment,
    mask: Option<&prost_types::FieldMask>,
) -> Result<SegmentPatch, CustomerError> {
    const EDITABLE: [&str; 5] = [
        "segment_name",
        "description",
        "service_level",
        "priority",
        "price_tier",
    ];
    // Without a mask, only the fields the request sets (non-default values)
    // change, as AIP-134 asks; clearing a field needs the mask.
    let paths: Vec<&str> = match mask {
        Some(mask) if !mask.paths.is_empty() => mask.paths.iter().map(String::as_str).collect(),
        _ => EDITABLE
            .into_iter()
            .filter(|path| match *path {
                "segment_name" => !segment.segment_name.is_empty(),
                "description" => !segment.description.is_empty(),
                "service_level" => segment.service_level != 0,
                "priority" => segment.priority != 0,
                _ => !segment.price_tier.is_empty(),
            })
            .collect(),
    };
    let mut patch = SegmentPatch::default();
    for path in paths {
        match path {
            "segment_name" => {
                patch.segment_name = Some(
                    SegmentName::parse(&segment.segment_name)
                        .map_err(field("segment.segment_name"))?,
                );
            }
            "description" => {
                patch.description = Some(
                    Description::parse(&segment.description)
                        .map_err(field("segment.description"))?,
                );
            }
            "service_level" => {
                patch.service_level = Some(
                    service_level_from(segment.service_level, "segment.service_level")?
                        .ok_or_else(|| {
                            CustomerError::invalid(
                                "segment.service_level",
                                "a service level is required",
                            )
                        })?,
                );
            }
            "priority" => {
                patch.priority =
                    Some(Priority::new(segment.priority).map_err(field("segment.priority"))?);
            }
            "price_tier" => {
                patch.price_tier = Some(optional_tier(&segment.price_tier, "segment.price_tier")?)
            }
            other => {
                return Err(CustomerError::invalid(
                    "update_mask",
                    format!(
                        "{other:?} cannot be updated; editable fields are {}",
                        EDITABLE.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(patch)
}

impl From<CustomerError> for Status {
    fn from(error: CustomerError) -> Self {
        let message = error.to_string();
        match error {
            CustomerError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            CustomerError::CustomerNotFound(_)
            | CustomerError::SegmentNotFound(_)
            | CustomerError::TerritoryNotFound(_)
            | CustomerError::AssignmentNotFound(_)
            | CustomerError::MappingNotFound(_) => Status::not_found(message),
            CustomerError::SegmentExists(_) => Status::already_exists(message),
            CustomerError::SegmentInactive(_)
            | CustomerError::CustomerDisabled(_)
            | CustomerError::FailedPrecondition(_) => Status::failed_precondition(message),
            CustomerError::NotReady => Status::unavailable(message),
            CustomerError::Store(store) => store_status("customer", &store),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

/// Rows read from the store at a time by streaming RPCs.
const STREAM_PAGE: u32 = 500;

#[tonic::async_trait]
impl CustomerService for CustomerGrpc {
    #[tracing::instrument(name = "CustomerService.CreateSegment", skip_all)]
    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> RpcResult<pb::CreateSegmentResponse> {
        let actor = actor(&request);
        let segment = request
            .into_inner()
            .segment
            .ok_or_else(|| CustomerError::invalid("segment", "a segment is required"))?;
        let created = self
            .store()?
            .create_segment(new_segment(segment)?, &actor)
            .await?;
        Ok(Response::new(pb::CreateSegmentResponse {
            segment: Some(segment_to_proto(created)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.GetSegment", skip_all)]
    async fn get_segment(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> RpcResult<pb::GetSegmentResponse> {
        let code = parse_code(&request.get_ref().code, "code")?;
        let segment = self.store()?.segment(&code).await?;
        Ok(Response::new(pb::GetSegmentResponse {
            segment: Some(segment_to_proto(segment)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ListSegments", skip_all)]
    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> RpcResult<pb::ListSegmentsResponse> {
        let request = request.into_inner();
        let size = page_size(request.page_size).map_err(CustomerError::from)?;
        let status = match pb::SegmentStatus::try_from(request.status) {
            Ok(pb::SegmentStatus::Unspecified) => None,
            Ok(pb::SegmentStatus::Active) => Some(SegmentStatus::Active),
            Ok(pb::SegmentStatus::Inactive) => Some(SegmentStatus::Inactive),
            Err(_) => {
                return Err(CustomerError::invalid(
                    "status",
                    format!("{} is not a status", request.status),
                )
                .into());
            }
        };
        let page = self
            .store()?
            .list_segments(status, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: page.items.into_iter().map(segment_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.UpdateSegment", skip_all)]
    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> RpcResult<pb::UpdateSegmentResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let segment = request
            .segment
            .ok_or_else(|| CustomerError::invalid("segment", "a segment is required"))?;
        let code = parse_code(&segment.code, "segment.code")?;
        let patch = segment_patch(&segment, request.update_mask.as_ref())?;
        let updated = self.store()?.update_segment(&code, patch, &actor).await?;
        Ok(Response::new(pb::UpdateSegmentResponse {
            segment: Some(segment_to_proto(updated)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.DeactivateSegment", skip_all)]
    async fn deactivate_segment(
        &self,
        request: Request<pb::DeactivateSegmentRequest>,
    ) -> RpcResult<pb::DeactivateSegmentResponse> {
        let actor = actor(&request);
        let code = parse_code(&request.get_ref().code, "code")?;
        let segment = self
            .store()?
            .set_segment_status(&code, SegmentStatus::Inactive, &actor)
            .await?;
        Ok(Response::new(pb::DeactivateSegmentResponse {
            segment: Some(segment_to_proto(segment)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ActivateSegment", skip_all)]
    async fn activate_segment(
        &self,
        request: Request<pb::ActivateSegmentRequest>,
    ) -> RpcResult<pb::ActivateSegmentResponse> {
        let actor = actor(&request);
        let code = parse_code(&request.get_ref().code, "code")?;
        let segment = self
            .store()?
            .set_segment_status(&code, SegmentStatus::Active, &actor)
            .await?;
        Ok(Response::new(pb::ActivateSegmentResponse {
            segment: Some(segment_to_proto(segment)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.AssignSegment", skip_all)]
    async fn assign_segment(
        &self,
        request: Request<pb::AssignSegmentRequest>,
    ) -> RpcResult<pb::AssignSegmentResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let from = self.date_or_today(request.effective_from.as_ref(), "effective_from")?;
        let assignment = NewAssignment {
            customer: parse_name(&request.customer, "customer")?,
            segment: parse_code(&request.segment_code, "segment_code")?,
            is_primary: request.is_primary,
            range: range(from, request.effective_to.as_ref())?,
        };
        let outcome = self.store()?.assign_segment(assignment, &actor).await?;
        Ok(Response::new(pb::AssignSegmentResponse {
            assignment: Some(assignment_to_proto(outcome.created)),
            replaced: outcome
                .replaced
                .into_iter()
                .map(assignment_to_proto)
                .collect(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.EndAssignment", skip_all)]
    async fn end_assignment(
        &self,
        request: Request<pb::EndAssignmentRequest>,
    ) -> RpcResult<pb::EndAssignmentResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        if request.assignment_id.is_empty() {
            return Err(
                CustomerError::invalid("assignment_id", "an assignment id is required").into(),
            );
        }
        let to = self.date_or_today(request.effective_to.as_ref(), "effective_to")?;
        let assignment = self
            .store()?
            .end_assignment(&request.assignment_id, to, &actor)
            .await?;
        Ok(Response::new(pb::EndAssignmentResponse {
            assignment: Some(assignment_to_proto(assignment)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ListCustomerSegments", skip_all)]
    async fn list_customer_segments(
        &self,
        request: Request<pb::ListCustomerSegmentsRequest>,
    ) -> RpcResult<pb::ListCustomerSegmentsResponse> {
        let request = request.into_inner();
        let customer = parse_name(&request.customer, "customer")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let segments = self.store()?.customer_segments(&customer, as_of).await?;
        Ok(Response::new(pb::ListCustomerSegmentsResponse {
            segments: segments
                .into_iter()
                .map(customer_segment_to_proto)
                .collect(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.GetPrimarySegment", skip_all)]
    async fn get_primary_segment(
        &self,
        request: Request<pb::GetPrimarySegmentRequest>,
    ) -> RpcResult<pb::GetPrimarySegmentResponse> {
        let request = request.into_inner();
        let customer = parse_name(&request.customer, "customer")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let primary = self.store()?.primary_segment(&customer, as_of).await?;
        Ok(Response::new(pb::GetPrimarySegmentResponse {
            primary: primary.map(customer_segment_to_proto),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ListAssignmentHistory", skip_all)]
    async fn list_assignment_history(
        &self,
        request: Request<pb::ListAssignmentHistoryRequest>,
    ) -> RpcResult<pb::ListAssignmentHistoryResponse> {
        let request = request.into_inner();
        let customer = parse_name(&request.customer, "customer")?;
        let size = page_size(request.page_size).map_err(CustomerError::from)?;
        let page = self
            .store()?
            .assignment_history(&customer, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListAssignmentHistoryResponse {
            assignments: page.items.into_iter().map(assignment_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ListSegmentCustomers", skip_all)]
    async fn list_segment_customers(
        &self,
        request: Request<pb::ListSegmentCustomersRequest>,
    ) -> RpcResult<pb::ListSegmentCustomersResponse> {
        let request = request.into_inner();
        let code = parse_code(&request.segment_code, "segment_code")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let size = page_size(request.page_size).map_err(CustomerError::from)?;
        let page = self
            .store()?
            .segment_customers(
                &code,
                as_of,
                request.primary_only,
                size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListSegmentCustomersResponse {
            assignments: page.items.into_iter().map(assignment_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    type StreamSegmentCustomersStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<pb::StreamSegmentCustomersResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    #[tracing::instrument(name = "CustomerService.StreamSegmentCustomers", skip_all)]
    async fn stream_segment_customers(
        &self,
        request: Request<pb::StreamSegmentCustomersRequest>,
    ) -> RpcResult<Self::StreamSegmentCustomersStream> {
        use futures::{StreamExt as _, TryStreamExt as _};

        let request = request.into_inner();
        let code = parse_code(&request.segment_code, "segment_code")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let primary_only = request.primary_only;
        let store = Arc::clone(self.store()?);
        // An unknown segment is refused before the stream starts.
        store.segment(&code).await?;
        // Page by page from the store, each page's rows sent one by one; a
        // page is read only when the client has taken the previous one.
        let pages = futures::stream::try_unfold(Some(String::new()), move |token| {
            let (store, code) = (Arc::clone(&store), code.clone());
            async move {
                let Some(token) = token else {
                    return Ok(None);
                };
                let page = store
                    .segment_customers(&code, as_of, primary_only, STREAM_PAGE, &token)
                    .await?;
                let rows = futures::stream::iter(page.items.into_iter().map(|assignment| {
                    Ok::<_, Status>(pb::StreamSegmentCustomersResponse {
                        assignment: Some(assignment_to_proto(assignment)),
                    })
                }));
                Ok::<_, CustomerError>(Some((rows, page.next_token)))
            }
        });
        let stream = pages.map_err(Status::from).try_flatten().boxed();
        Ok(Response::new(stream))
    }

    #[tracing::instrument(name = "CustomerService.MapTerritory", skip_all)]
    async fn map_territory(
        &self,
        request: Request<pb::MapTerritoryRequest>,
    ) -> RpcResult<pb::MapTerritoryResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let from = self.date_or_today(request.effective_from.as_ref(), "effective_from")?;
        let mapping = NewTerritoryMapping {
            customer: parse_name(&request.customer, "customer")?,
            territory: parse_name(&request.territory, "territory")?,
            coverage: coverage_from(request.coverage_type)?,
            range: range(from, request.effective_to.as_ref())?,
            price_tier: optional_tier(&request.price_tier, "price_tier")?,
            service_level: service_level_from(request.service_level, "service_level")?,
        };
        let outcome = self.store()?.map_territory(mapping, &actor).await?;
        Ok(Response::new(pb::MapTerritoryResponse {
            mapping: Some(mapping_to_proto(outcome.created)),
            replaced: outcome.replaced.into_iter().map(mapping_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.EndTerritoryMapping", skip_all)]
    async fn end_territory_mapping(
        &self,
        request: Request<pb::EndTerritoryMappingRequest>,
    ) -> RpcResult<pb::EndTerritoryMappingResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        if request.mapping_id.is_empty() {
            return Err(CustomerError::invalid("mapping_id", "a mapping id is required").into());
        }
        let to = self.date_or_today(request.effective_to.as_ref(), "effective_to")?;
        let mapping = self
            .store()?
            .end_territory_mapping(&request.mapping_id, to, &actor)
            .await?;
        Ok(Response::new(pb::EndTerritoryMappingResponse {
            mapping: Some(mapping_to_proto(mapping)),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ListCustomerTerritories", skip_all)]
    async fn list_customer_territories(
        &self,
        request: Request<pb::ListCustomerTerritoriesRequest>,
    ) -> RpcResult<pb::ListCustomerTerritoriesResponse> {
        let request = request.into_inner();
        let customer = parse_name(&request.customer, "customer")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let territories = self.store()?.customer_territories(&customer, as_of).await?;
        Ok(Response::new(pb::ListCustomerTerritoriesResponse {
            territories: territories.into_iter().map(mapping_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "CustomerService.ResolveCustomerProfile", skip_all)]
    async fn resolve_customer_profile(
        &self,
        request: Request<pb::ResolveCustomerProfileRequest>,
    ) -> RpcResult<pb::ResolveCustomerProfileResponse> {
        let request = request.into_inner();
        let customer = parse_name(&request.customer, "customer")?;
        let as_of = self.date_or_today(request.at.as_ref(), "at")?;
        let profile = self.store()?.profile(&customer, as_of).await?;
        let primary = profile.primary().cloned().map(customer_segment_to_proto);
        Ok(Response::new(pb::ResolveCustomerProfileResponse {
            customer: profile.customer.name.to_string(),
            customer_name: profile.customer.customer_name,
            customer_group: profile.customer.customer_group,
            disabled: profile.customer.disabled,
            as_of: Some(date_to_proto(profile.as_of)),
            primary,
            segments: profile
                .segments
                .into_iter()
                .map(customer_segment_to_proto)
                .collect(),
            territories: profile
                .territories
                .into_iter()
                .map(mapping_to_proto)
                .collect(),
            service_level: service_level_to(profile.service_level).into(),
            service_level_source: source_to(profile.service_level_source).into(),
            price_tier: profile
                .price_tier
                .map(|t| t.to_string())
                .unwrap_or_default(),
            price_tier_source: source_to(profile.price_tier_source).into(),
        }))
    }
}
