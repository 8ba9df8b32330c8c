//! Generated code for the Harsha Mesh contracts in `proto/harsha/<service>/v1`,
//! one module per protobuf package, plus [`FILE_DESCRIPTOR_SET`]: the encoded
//! descriptors of every contract and its imports, with their options, for
//! server reflection and REST transcoding.
//!
//! Nothing here is written by hand except the module tree, the wire-type
//! helpers in [`convert`], the request metadata names in [`metadata`] and
//! the lookup in [`access`].
#![allow(missing_docs, clippy::all, clippy::pedantic)]
// Generated code takes none of the workspace lints but this one.
#![forbid(unsafe_code)]

pub mod convert;
pub mod metadata;

/// The encoded `FileDescriptorSet` of every contract, including imports and
/// the `google.api.http` options.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/harsha_descriptor.bin"));

/// Who may call each RPC, from the contracts' `(harsha.type.v1.required_scope)`
/// options.
pub mod access {
    include!(concat!(env!("OUT_DIR"), "/method_scopes.rs"));

    /// The scope `path` (`/package.Service/Method`) requires, if it is a
    /// Harsha RPC.
    pub fn required_scope(path: &str) -> Option<&'static str> {
        METHOD_SCOPES
            .binary_search_by(|(p, _)| (*p).cmp(path))
            .ok()
            .map(|i| METHOD_SCOPES[i].1)
    }
}

/// Google common types used by the contracts.
pub mod google {
    /// HTTP annotations.
    pub mod api {
        tonic::include_proto!("google.api");
    }
    /// Calendar types.
    pub mod r#type {
        tonic::include_proto!("google.r#type");
    }
}

/// Harsha Mesh contracts.
pub mod harsha {
    /// Shared types.
    pub mod r#type {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.r#type.v1");
        }
    }
    /// Customer segmentation and territories.
    pub mod customer {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.customer.v1");
        }
    }
    /// Inventory, batches and expiry.
    pub mod inventory {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.inventory.v1");
        }
    }
    /// Dynamic pricing.
    pub mod pricing {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.pricing.v1");
        }
    }
    /// Users, tokens and keys.
    pub mod auth {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.auth.v1");
        }
    }
    /// Events and conflicts.
    pub mod sync {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.sync.v1");
        }
    }
    /// Orders placed across the mesh.
    pub mod order {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("harsha.order.v1");
        }
    }
}
