//! The Nix store database of an image: `/nix/var/nix/db/db.sqlite`, schema version 10.
//!
//! What `nix-store --load-db < registration` (and `nixos-install`) leave, minus their
//! nondeterminism: paths are inserted in sorted order, so `ValidPaths.id` follows the path
//! order rather than copy-completion order; every `registrationTime` is the caller's (from
//! `SOURCE_DATE_EPOCH`); the database uses SQLite's rollback journal and is closed, so no
//! `-wal`/`-shm`/`-journal` files remain. Hashes are stored as Nix stores them,
//! `sha256:<base16>`.

#[cfg(feature = "db")]
use std::collections::BTreeMap;
use std::path::Path;

#[cfg(feature = "db")]
use rusqlite::{Connection, params};

use crate::{Error, ErrorKind, PathInfo, Result};

/// Nix's store schema version (`nixSchemaVersion`): the content of `/nix/var/nix/db/schema`.
pub const SCHEMA_VERSION: u32 = 10;

/// `src/libstore/schema.sql` of Nix, plus `IndexReferrer`, which Nix up to 2.34 creates and
/// newer Nix drops by a migration: keeping it serves readers of both ages.
#[cfg(feature = "db")]
const SCHEMA: &str = "
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null,
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
";

/// Writes a new database file `file` (which must not exist yet) registering `paths`, each at
/// `registration_time` (seconds since the epoch).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a repeated path or a reference to a path not in `paths`
/// (the closure is not closed); [`ErrorKind::Io`] when `file` exists or SQLite fails.
pub fn write_db(file: &Path, paths: &[PathInfo], registration_time: i64) -> Result<()> {
    if file.exists() {
        return Err(Error::new(ErrorKind::Io, "the database file exists already").with_path(file));
    }
    let bytes = db_bytes(paths, registration_time)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| Error::io(file, e))?;
    std::io::Write::write_all(&mut f, &bytes).map_err(|e| Error::io(file, e))
}

/// The bytes of the database [`write_db`] would write, built in memory: no scratch file or
/// directory anywhere, so an interrupted build leaves nothing behind.
///
/// # Errors
/// As [`write_db`]; without the crate's `db` feature (the facade's `nix-db`), always
/// [`ErrorKind::Unsupported`]: SQLite is not compiled in.
#[cfg(not(feature = "db"))]
pub fn db_bytes(_paths: &[PathInfo], _registration_time: i64) -> Result<Vec<u8>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "the Nix store database (/nix/var/nix/db/db.sqlite): imagetool was built without the \
         `nix-db` feature (imagetool-nix's `db`)",
    ))
}

/// The bytes of the database [`write_db`] would write, built in memory: no scratch file or
/// directory anywhere, so an interrupted build leaves nothing behind.
///
/// # Errors
/// As [`write_db`]; without the crate's `db` feature (the facade's `nix-db`), always
/// [`ErrorKind::Unsupported`].
#[cfg(feature = "db")]
pub fn db_bytes(paths: &[PathInfo], registration_time: i64) -> Result<Vec<u8>> {
    let name = Path::new("/nix/var/nix/db/db.sqlite");
    let sql = |e: rusqlite::Error| Error::io(name, std::io::Error::other(format!("sqlite: {e}")));
    let mut conn = Connection::open_in_memory().map_err(sql)?;
    fill(&mut conn, paths, registration_time, &sql)?;
    let bytes = conn.serialize(rusqlite::MAIN_DB).map_err(sql)?.to_vec();
    conn.close().map_err(|(_, e)| sql(e))?;
    Ok(bytes)
}

#[cfg(feature = "db")]
fn fill(
    conn: &mut Connection,
    paths: &[PathInfo],
    registration_time: i64,
    sql: &dyn Fn(rusqlite::Error) -> Error,
) -> Result<()> {
    let mut sorted: BTreeMap<&str, &PathInfo> = BTreeMap::new();
    for p in paths {
        if sorted.insert(p.path.as_str(), p).is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is listed twice", p.path),
            ));
        }
    }
    // Ids follow the sorted path order, from 1.
    let ids: BTreeMap<&str, i64> = sorted.keys().zip(1i64..).map(|(p, id)| (*p, id)).collect();
    for p in sorted.values() {
        if let Some(r) = p.references.iter().find(|r| !ids.contains_key(r.as_str())) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} refers to {r}, which is not in the closure", p.path),
            ));
        }
    }
    conn.execute_batch("pragma page_size = 4096; pragma journal_mode = delete;")
        .map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    let tx = conn.transaction().map_err(sql)?;
    {
        let mut valid = tx
            .prepare(
                "insert into ValidPaths (id, path, hash, registrationTime, deriver, narSize) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(sql)?;
        for (path, p) in &sorted {
            let size = i64::try_from(p.nar_size).map_err(|_| {
                Error::new(
                    ErrorKind::Overflow,
                    format!("{path}: NAR size {}", p.nar_size),
                )
            })?;
            valid
                .execute(params![
                    ids[path],
                    path,
                    format!("sha256:{}", crate::hex(&p.nar_hash)),
                    registration_time,
                    p.deriver.as_ref().map(|d| d.as_str()),
                    size
                ])
                .map_err(sql)?;
        }
        let mut refs = tx
            .prepare("insert into Refs (referrer, reference) values (?1, ?2)")
            .map_err(sql)?;
        for (path, p) in &sorted {
            // References are a sorted set, and ids follow path order: rows go in sorted.
            for r in &p.references {
                refs.execute(params![ids[path], ids[r.as_str()]])
                    .map_err(sql)?;
            }
        }
    }
    tx.commit().map_err(sql)?;
    Ok(())
}

#[cfg(all(test, feature = "db"))]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::StorePath;

    fn info(path: &str, refs: &[&str]) -> PathInfo {
        PathInfo {
            path: StorePath::parse(path).unwrap(),
            nar_hash: [7; 32],
            nar_size: 4242,
            deriver: None,
            references: refs.iter().map(|r| StorePath::parse(r).unwrap()).collect(),
        }
    }

    const A: &str = "/nix/store/00000000000000000000000000000000-a";
    const B: &str = "/nix/store/11111111111111111111111111111111-b";

    #[test]
    fn test_write_db_is_deterministic_and_leaves_no_side_files() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [info(B, &[A, B]), info(A, &[])];
        write_db(&dir.path().join("1.sqlite"), &paths, 1_700_000_000).unwrap();
        write_db(&dir.path().join("2.sqlite"), &paths, 1_700_000_000).unwrap();
        let one = std::fs::read(dir.path().join("1.sqlite")).unwrap();
        assert_eq!(one, std::fs::read(dir.path().join("2.sqlite")).unwrap());
        let names: BTreeSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.sqlite", "2.sqlite"].map(String::from).into());
    }

    #[test]
    fn test_write_db_rejects_open_closure_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_db(&dir.path().join("x"), &[info(B, &[A])], 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("not in the closure"), "{err}");
        let err = write_db(&dir.path().join("y"), &[info(A, &[]), info(A, &[])], 0).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        assert!(!dir.path().join("x").exists() && !dir.path().join("y").exists());
    }
}

#[cfg(all(test, not(feature = "db")))]
mod without_sqlite {
    use super::*;

    /// `cargo test -p imagetool-nix --no-default-features --lib without_sqlite`.
    #[test]
    fn test_the_database_is_refused_naming_the_feature() {
        let err = db_bytes(&[], 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("`nix-db` feature"), "{err}");
    }
}
