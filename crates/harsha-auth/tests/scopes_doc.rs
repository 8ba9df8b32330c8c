//! `docs/scopes.md` lists the scope of every RPC, rendered from the
//! contracts' `(harsha.type.v1.required_scope)` options; this test fails
//! when the two drift apart (`HARSHA_WRITE_SCOPES_DOC=1` rewrites the file).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fmt::Write as _;

use harsha_auth::domain::{Role, Scope};

fn render() -> String {
    let mut doc = String::from(
        "# Who may call what\n\n\
         Generated from the `(harsha.type.v1.required_scope)` option of every RPC in `proto/`\n\
         (the `scopes_doc` test keeps this file in step). Every server enforces these scopes\n\
         itself, so a service called directly is as protected as through the edge. A call\n\
         carries an access token (`authorization: Bearer <jwt>`) or an API key (`x-api-key`);\n\
         without one it is `UNAUTHENTICATED`, with one lacking the scope `PERMISSION_DENIED`.\n\
         `public` needs no credential; `authenticated` needs any valid one.\n\n\
         ## Roles\n\n| role | scopes |\n|---|---|\n",
    );
    for role in [
        Role::Admin,
        Role::Sales,
        Role::Warehouse,
        Role::PricingManager,
        Role::Storefront,
        Role::Viewer,
    ] {
        let scopes: Vec<&str> = role.scopes().iter().map(|s| s.as_str()).collect();
        writeln!(doc, "| {} | {} |", role.as_str(), scopes.join(", ")).unwrap();
    }
    doc.push_str("\n## Scopes\n\n| scope | grants |\n|---|---|\n");
    for scope in Scope::ALL {
        writeln!(doc, "| `{}` | {} |", scope.as_str(), scope.description()).unwrap();
    }
    let mut service = "";
    for (path, scope) in harsha_proto::access::METHOD_SCOPES {
        let (name, method) = path.trim_start_matches('/').split_once('/').unwrap();
        if name != service {
            service = name;
            write!(doc, "\n## `{name}`\n\n| RPC | requires |\n|---|---|\n").unwrap();
        }
        writeln!(doc, "| {method} | `{scope}` |").unwrap();
    }
    doc
}

#[test]
fn the_scope_document_matches_the_contracts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/scopes.md");
    let expected = render();
    if std::env::var_os("HARSHA_WRITE_SCOPES_DOC").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/scopes.md is out of date; run HARSHA_WRITE_SCOPES_DOC=1 cargo test -p harsha-auth --test scopes_doc"
    );
}
