//! The REST routes, derived at start from the descriptor set: every method
//! with a `google.api.http` rule (and its `additional_bindings`) becomes a
//! [`Route`] with its HTTP method, parsed path template, body and
//! response-body selectors. Matching a request path yields the route and
//! the values its variables captured.

use http::Method;
use http_path_template::{Grammar, PathTemplate, Segment};
use percent_encoding::percent_decode_str;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};

/// What a request's body fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTarget {
    /// No body.
    None,
    /// The whole request message (`body: "*"`).
    Whole,
    /// One top-level field (`body: "plan"`).
    Field(String),
}

/// One element of a flattened path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    /// A segment that must match verbatim.
    Literal(String),
    /// Exactly one segment.
    Single,
    /// Every remaining segment (zero or more).
    Rest,
    /// A variable's capture starts here.
    Open(String),
    /// The open variable's capture ends here.
    Close,
}

/// A REST binding of a gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub http_method: Method,
    /// The template as written, for logs and the OpenAPI document.
    pub template: String,
    atoms: Vec<Atom>,
    verb: Option<String>,
    /// The gRPC method called.
    pub method: MethodDescriptor,
    /// What the body fills.
    pub body: BodyTarget,
    /// The response field sent as the body, or the whole response.
    pub response_body: Option<String>,
}

/// Why the routes could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The descriptor set does not decode.
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(String),
    /// A rule's path does not parse.
    #[error("{method}: path template {template:?}: {reason}")]
    Template {
        /// The method.
        method: String,
        /// The template.
        template: String,
        /// Why.
        reason: String,
    },
    /// A rule names a field the request message does not have.
    #[error("{method}: {what} names no field of {message}: {field:?}")]
    Field {
        /// The method.
        method: String,
        /// Where the name appeared.
        what: &'static str,
        /// The request or response message.
        message: String,
        /// The name.
        field: String,
    },
}

/// A matched route and the values its variables captured, by field path.
#[derive(Debug)]
pub struct Matched<'r> {
    /// The route.
    pub route: &'r Route,
    /// `(field.path, value)` pairs, percent-decoded.
    pub captured: Vec<(String, String)>,
}

/// Every route, in matching order.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// The routes of every method of `services` (full names) in `pool`.
    pub fn build(pool: &DescriptorPool, services: &[&str]) -> Result<Self, RouteError> {
        let http = pool
            .get_extension_by_name("google.api.http")
            .ok_or_else(|| RouteError::Descriptors("google.api.http is not defined".into()))?;
        let mut routes = Vec::new();
        for service in pool
            .services()
            .filter(|s| services.contains(&s.full_name()))
        {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&http) {
                    continue;
                }
                if method.is_client_streaming() {
                    continue;
                }
                let Some(rule) = options.get_extension(&http).as_message().cloned() else {
                    continue;
                };
                let mut rules = vec![rule.clone()];
                if let Some(Value::List(more)) = rule
                    .get_field_by_name("additional_bindings")
                    .map(|v| v.into_owned())
                {
                    rules.extend(more.iter().filter_map(|v| v.as_message().cloned()));
                }
                for rule in rules {
                    if let Some(route) = route_of(&method, &rule)? {
                        routes.push(route);
                    }
                }
            }
        }
        // Custom verbs first, then the templates with the most literals, so
        // the most specific route wins.
        routes.sort_by_key(|r| {
            let literals = r
                .atoms
                .iter()
                .filter(|a| matches!(a, Atom::Literal(_)))
                .count();
            (r.verb.is_none(), usize::MAX - literals, r.atoms.len())
        });
        Ok(Self { routes })
    }

    /// Every route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path`, if any; `Err(true)` when the path
    /// exists under another method (405), `Err(false)` when not at all.
    pub fn find(&self, http_method: &Method, path: &str) -> Result<Matched<'_>, bool> {
        let mut other_method = false;
        for route in &self.routes {
            if let Some(captured) = route.capture(path) {
                if route.http_method == *http_method {
                    return Ok(Matched { route, captured });
                }
                other_method = true;
            }
        }
        Err(other_method)
    }
}

fn string_field(rule: &DynamicMessage, name: &str) -> String {
    rule.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn route_of(method: &MethodDescriptor, rule: &DynamicMessage) -> Result<Option<Route>, RouteError> {
    let (http_method, template) = match ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .map(|kind| (kind, string_field(rule, kind)))
        .find(|(_, template)| !template.is_empty())
    {
        Some((kind, template)) => (
            kind.to_ascii_uppercase()
                .parse::<Method>()
                .unwrap_or(Method::GET),
            template,
        ),
        None => {
            let custom = rule
                .get_field_by_name("custom")
                .and_then(|v| v.as_message().cloned());
            match custom {
                Some(custom) => {
                    let kind = string_field(&custom, "kind");
                    let Ok(kind) = kind.parse::<Method>() else {
                        return Ok(None);
                    };
                    (kind, string_field(&custom, "path"))
                }
                None => return Ok(None),
            }
        }
    };
    let parsed =
        PathTemplate::parse(&template, Grammar::default()).map_err(|e| RouteError::Template {
            method: method.full_name().to_owned(),
            template: template.clone(),
            reason: e.to_string(),
        })?;
    let mut atoms = Vec::new();
    flatten(parsed.segments(), &mut atoms);
    let input = method.input();
    for atom in &atoms {
        if let Atom::Open(path) = atom
            && !field_path_exists(&input, path)
        {
            return Err(RouteError::Field {
                method: method.full_name().to_owned(),
                what: "a path variable",
                message: input.full_name().to_owned(),
                field: path.clone(),
            });
        }
    }
    let body = match string_field(rule, "body").as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::Whole,
        field => {
            if input.get_field_by_name(field).is_none() {
                return Err(RouteError::Field {
                    method: method.full_name().to_owned(),
                    what: "body",
                    message: input.full_name().to_owned(),
                    field: field.to_owned(),
                });
            }
            BodyTarget::Field(field.to_owned())
        }
    };
    let response_body = match string_field(rule, "response_body").as_str() {
        "" | "*" => None,
        field => {
            if method.output().get_field_by_name(field).is_none() {
                return Err(RouteError::Field {
                    method: method.full_name().to_owned(),
                    what: "response_body",
                    message: method.output().full_name().to_owned(),
                    field: field.to_owned(),
                });
            }
            Some(field.to_owned())
        }
    };
    Ok(Some(Route {
        http_method,
        atoms,
        verb: parsed.verb().map(str::to_owned),
        template,
        method: method.clone(),
        body,
        response_body,
    }))
}

fn flatten<'a>(segments: impl IntoIterator<Item = &'a Segment<'a>>, atoms: &mut Vec<Atom>) {
    for segment in segments {
        flatten_one(*segment, atoms);
    }
}

fn flatten_one(segment: Segment<'_>, atoms: &mut Vec<Atom>) {
    match segment {
        Segment::Literal(text) => atoms.push(Atom::Literal(text.to_owned())),
        Segment::Single => atoms.push(Atom::Single),
        Segment::Rest => atoms.push(Atom::Rest),
        Segment::Variable(variable) => {
            atoms.push(Atom::Open(variable.field_path().to_owned()));
            for inner in variable.segments() {
                flatten_one(inner, atoms);
            }
            atoms.push(Atom::Close);
        }
        // Only the extended grammar produces other kinds.
        _ => atoms.push(Atom::Literal(String::from("\u{0}"))),
    }
}

/// Whether `path` (`a.b.c`) names a field chain of `message`.
pub fn field_path_exists(message: &prost_reflect::MessageDescriptor, path: &str) -> bool {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(field) = current.get_field_by_name(part) else {
            return false;
        };
        if parts.peek().is_some() {
            match field.kind().as_message() {
                Some(next) => current = next.clone(),
                None => return false,
            }
        }
    }
    true
}

impl Route {
    /// Matches `path` against this route; the captured variables if it
    /// matches.
    fn capture(&self, path: &str) -> Option<Vec<(String, String)>> {
        let path = path.strip_prefix('/')?;
        let path = match &self.verb {
            Some(verb) => path.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => path,
        };
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let mut position = 0;
        let mut captured = Vec::new();
        let mut open: Option<(String, usize)> = None;
        for atom in &self.atoms {
            match atom {
                Atom::Literal(text) => {
                    let segment = segments.get(position)?;
                    if decode(segment) != *text {
                        return None;
                    }
                    position += 1;
                }
                Atom::Single => {
                    let segment = segments.get(position)?;
                    if segment.is_empty() {
                        return None;
                    }
                    position += 1;
                }
                Atom::Rest => position = segments.len(),
                Atom::Open(field) => open = Some((field.clone(), position)),
                Atom::Close => {
                    let (field, start) = open.take()?;
                    let value = segments[start..position]
                        .iter()
                        .map(|s| decode(s))
                        .collect::<Vec<_>>()
                        .join("/");
                    captured.push((field, value));
                }
            }
        }
        (position == segments.len()).then_some(captured)
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(harsha_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("{e}"));
        RouteTable::build(
            &pool,
            &[
                "harsha.customer.v1.CustomerService",
                "harsha.auth.v1.AuthService",
                "harsha.inventory.v1.InventoryService",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn found(table: &RouteTable, method: Method, path: &str) -> (String, Vec<(String, String)>) {
        let matched = table
            .find(&method, path)
            .unwrap_or_else(|_| panic!("{method} {path} has no route"));
        (matched.route.method.name().to_owned(), matched.captured)
    }

    #[test]
    fn paths_match_their_methods_and_capture_variables() {
        let table = table();
        assert_eq!(
            found(&table, Method::GET, "/v1/users/u%2F1"),
            ("GetUser".into(), vec![("user_id".into(), "u/1".into())])
        );
        assert_eq!(
            found(&table, Method::POST, "/v1/users/abc:disable"),
            ("DisableUser".into(), vec![("user_id".into(), "abc".into())])
        );
        assert_eq!(found(&table, Method::POST, "/v1/users").0, "CreateUser");
        assert_eq!(
            found(&table, Method::GET, "/.well-known/jwks.json").0,
            "GetJwks"
        );
        assert_eq!(
            found(&table, Method::PUT, "/v1/rate-limit-plans/gold").1,
            vec![("plan.name".into(), "gold".into())]
        );
        assert!(matches!(
            table.find(&Method::DELETE, "/v1/users"),
            Err(true)
        ));
        assert!(matches!(
            table.find(&Method::GET, "/v1/nothing"),
            Err(false)
        ));
        assert!(matches!(
            table.find(&Method::GET, "/v1/users/a/b"),
            Err(false)
        ));
    }

    #[test]
    fn every_harsha_rpc_with_a_rule_has_a_route() {
        let pool = DescriptorPool::decode(harsha_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("{e}"));
        let services: Vec<String> = pool
            .services()
            .map(|s| s.full_name().to_owned())
            .filter(|s| s.starts_with("harsha."))
            .collect();
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let table = RouteTable::build(&pool, &names).unwrap_or_else(|e| panic!("{e}"));
        let http = pool
            .get_extension_by_name("google.api.http")
            .unwrap_or_else(|| panic!("no google.api.http"));
        for service in pool.services().filter(|s| names.contains(&s.full_name())) {
            for method in service.methods() {
                let annotated = method.options().has_extension(&http);
                let routed = table
                    .routes()
                    .iter()
                    .any(|r| r.method.full_name() == method.full_name());
                assert_eq!(annotated, routed, "{}", method.full_name());
            }
        }
    }
}
