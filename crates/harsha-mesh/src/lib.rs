//! Tower layers shared by the mesh's servers (and, later, the edge and
//! service clients). Today: [`access`], the RBAC layer every gRPC server
//! runs, so a service called directly is as protected as through the edge.

pub mod access;

pub use access::AccessLayer;
