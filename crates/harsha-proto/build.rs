//! Compiles every contract under `proto/` with protox (no `protoc` needed),
//! generates tonic clients and servers, and writes the encoded descriptor set
//! (with the `google.api.http` options kept) for reflection and the edge.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let mut files = Vec::new();
    collect_protos(&proto_root.join("harsha"), &mut files)?;
    // The error detail messages the services send, so reflection describes
    // them too.
    files.push(proto_root.join("google/rpc/error_details.proto"));
    files.sort();
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    for file in &files {
        compiler.open_file(file.strip_prefix(&proto_root)?)?;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("harsha_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    write_method_scopes(
        &compiler.descriptor_pool(),
        &out_dir.join("method_scopes.rs"),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// Writes `METHOD_SCOPES`: every Harsha RPC's gRPC path and the scope its
/// `(harsha.type.v1.required_scope)` option names. An RPC without one fails
/// the build, so no RPC can be added unprotected by accident.
fn write_method_scopes(
    pool: &prost_reflect::DescriptorPool,
    out: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let option = pool
        .get_extension_by_name("harsha.type.v1.required_scope")
        .ok_or("harsha.type.v1.required_scope is not defined")?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for service in pool.services() {
        if !service.full_name().starts_with("harsha.") {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let options = method.options();
            let scope = options
                .has_extension(&option)
                .then(|| options.get_extension(&option).as_str().map(str::to_owned))
                .flatten()
                .filter(|s| !s.is_empty());
            match scope {
                Some(scope) => rows.push(format!("    ({path:?}, {scope:?}),\n")),
                None => missing.push(path),
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!("RPCs without (harsha.type.v1.required_scope): {missing:?}").into());
    }
    rows.sort();
    let body = format!(
        "/// Every Harsha RPC's gRPC path and the scope it requires (or `public`,\n\
         /// `authenticated`), from the `(harsha.type.v1.required_scope)` options.\n\
         pub const METHOD_SCOPES: &[(&str, &str)] = &[\n{}];\n",
        rows.concat()
    );
    fs::write(out, body)?;
    Ok(())
}

fn collect_protos(dir: &PathBuf, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
