//! `harsha backup` and `harsha restore` for the embedded SQLite mode: a
//! backup is a folder with a consistent copy of each role's database
//! (`VACUUM INTO`, safe while the mesh runs) and a manifest naming when it
//! was taken and the last migration of each role; a restore puts the
//! copies back into the data folder of a stopped mesh, checking each
//! against its manifest first. (MariaDB and PostgreSQL are backed up with
//! their own tools; docs/operations.md.)

use std::path::{Path, PathBuf};

use anyhow::Context;
use harsha_store::{Database, Pool, Role};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The manifest's file name in a backup folder.
const MANIFEST: &str = "harsha-backup.json";

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// When it was taken (RFC 3339, UTC).
    taken_at: String,
    /// Per role: the file and its last applied migration.
    roles: Vec<RoleCopy>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RoleCopy {
    role: String,
    file: String,
    last_migration: i64,
    bytes: u64,
}

/// Copies each role's SQLite database under `settings.data_dir` into the
/// new folder `to`.
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<()> {
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        anyhow::bail!("{} is not empty; back up into a new folder", to.display());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut roles = Vec::new();
    for role in Role::ALL {
        let source = settings.embedded_file(role);
        if !source.exists() {
            anyhow::bail!("{} does not exist: nothing to back up", source.display());
        }
        let database = Database::connect(role, &settings.embedded_url(role), &settings.pool)
            .await
            .with_context(|| format!("opening {}", source.display()))?;
        let file = source
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .context("a database file without a name")?;
        let target = to.join(&file);
        let copied = match database.pool() {
            Pool::Sqlite(pool) => harsha_store::sqlx::query("VACUUM INTO ?")
                .bind(target.to_string_lossy().into_owned())
                .execute(pool)
                .await
                .map(drop),
            _ => Ok(()),
        };
        let last_migration = last_applied(&database).await;
        database.close().await;
        copied.with_context(|| format!("copying {}", source.display()))?;
        let bytes = std::fs::metadata(&target)?.len();
        println!("{role}: {} ({bytes} bytes)", target.display());
        roles.push(RoleCopy {
            role: role.name().to_owned(),
            file,
            last_migration: last_migration?,
            bytes,
        });
    }
    let manifest = Manifest {
        taken_at: chrono::Utc::now().to_rfc3339(),
        roles,
    };
    std::fs::write(to.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    println!("backup complete: {}", to.display());
    Ok(())
}

async fn last_applied(database: &Database) -> anyhow::Result<i64> {
    let statuses = database.migration_status().await?;
    statuses
        .iter()
        .filter(|s| s.state == harsha_store::integrity::MigrationState::Applied)
        .map(|s| s.version)
        .max()
        .context("no migration is applied")
}

/// Puts the backup in `from` back into `settings.data_dir`. Refuses while
/// the mesh appears to run there (a write-ahead log is present) unless
/// `force`, and checks each copy opens and carries the migration its
/// manifest names before replacing anything.
pub async fn restore(settings: &Settings, from: &Path, force: bool) -> anyhow::Result<()> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST))
            .with_context(|| format!("{} has no {MANIFEST}", from.display()))?,
    )
    .with_context(|| format!("reading {}", from.join(MANIFEST).display()))?;
    let data_dir = &settings.data_dir;
    for role in Role::ALL {
        let wal = settings.embedded_file(role).with_extension("sqlite-wal");
        if wal.exists() && !force {
            anyhow::bail!(
                "{} exists: stop the mesh before restoring (or pass --force)",
                wal.display()
            );
        }
    }
    // Stage and check every copy before replacing anything.
    std::fs::create_dir_all(data_dir)?;
    let mut staged = Vec::new();
    for copy in &manifest.roles {
        let checked = stage(settings, from, copy).await;
        match checked {
            Ok(ready) => staged.push(ready),
            Err(error) => {
                for (_, path) in &staged {
                    let _ = std::fs::remove_file(path);
                }
                return Err(error);
            }
        }
    }
    for (role, path) in staged {
        let live = settings.embedded_file(role);
        for stale in ["sqlite-wal", "sqlite-shm"] {
            let _ = std::fs::remove_file(live.with_extension(stale));
        }
        std::fs::rename(&path, &live)?;
        println!("{role}: restored {}", live.display());
    }
    println!(
        "restored the backup taken at {} into {}",
        manifest.taken_at,
        data_dir.display()
    );
    Ok(())
}

/// Copies one role's backup next to its live file and checks it opens and
/// carries the migration the manifest names; returns the staged file.
async fn stage(
    settings: &Settings,
    from: &Path,
    copy: &RoleCopy,
) -> anyhow::Result<(Role, PathBuf)> {
    let role: Role = copy
        .role
        .parse()
        .map_err(|e| anyhow::anyhow!("manifest role {}: {e}", copy.role))?;
    let staged = settings
        .embedded_file(role)
        .with_extension("sqlite-restoring");
    std::fs::copy(from.join(&copy.file), &staged)
        .with_context(|| format!("copying {}", from.join(&copy.file).display()))?;
    let url = format!("sqlite://{}", staged.display());
    let checked = async {
        let database = Database::connect(role, &url, &settings.pool).await?;
        let last = last_applied(&database).await;
        database.close().await;
        let last = last?;
        if last != copy.last_migration {
            anyhow::bail!(
                "{}: its last migration is {last}, the manifest says {}",
                copy.file,
                copy.last_migration
            );
        }
        Ok(())
    }
    .await;
    if let Err(error) = checked {
        let _ = std::fs::remove_file(&staged);
        return Err(error.context(format!("checking the backup of {role}")));
    }
    Ok((role, staged))
}
