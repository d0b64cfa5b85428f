//! Shared helpers: the binary under its tool names, the corpus, privileged checks,
//! and a materializer that turns a dump into a real directory tree.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use cfs_core::dumpfile::{ParseOptions, parse_dumpfile};
use cfs_core::tree::{FileSystem, InodeId, InodeKind, RegularFile};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

pub(crate) use crate::corpus::{Row, manifest};

/// The corpus directory (a copy of the shared compat corpus).
pub(crate) fn corpus() -> PathBuf {
    crate::corpus::dir()
}

/// A directory with `mkcomposefs`, `composefs-info` and `mount.composefs` symlinks to `cfsctl`.
pub(crate) fn tools_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for name in ["mkcomposefs", "composefs-info", "mount.composefs", "cfsctl"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cfsctl"), dir.path().join(name))
                .unwrap();
        }
        dir
    })
    .path()
}

/// A command running the binary under `tool`'s name.
pub(crate) fn tool(tool: &str) -> Command {
    let mut c = Command::new(tools_dir().join(tool));
    c.env_remove("CFS_PARSE_STRICT").stdin(Stdio::null());
    c
}

/// Runs and returns the output.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("failed to run the binary")
}

/// SHA-256 of a file, hex.
pub(crate) fn sha256_file(path: &Path) -> String {
    crate::corpus::sha256_hex(&std::fs::read(path).unwrap())
}

/// True when privileged tests can run (root). With `CFS_TEST_PRIVILEGED=require`
/// a missing privilege fails the test instead of skipping it.
pub(crate) fn privileged(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("CFS_TEST_PRIVILEGED").as_deref() == Ok("require") {
        panic!("{test}: needs root, and CFS_TEST_PRIVILEGED=require");
    }
    eprintln!("{test}: skipped (needs root; set CFS_TEST_PRIVILEGED=require to fail instead)");
    false
}

/// Creates the tree described by the dump `dump` at `target` (which must not
/// exist), like the corpus's materialize.py: entries first, then ownership,
/// permissions and xattrs, then mtimes (directories deepest first).
pub(crate) fn materialize(dump: &Path, target: &Path) {
    let file = std::fs::File::open(dump).unwrap();
    let fs = parse_dumpfile(
        std::io::BufReader::new(file),
        &ParseOptions { strict: false },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dump.display()));
    std::fs::create_dir(target).unwrap();
    let old_umask = rustix::process::umask(Mode::empty());
    let result = std::panic::catch_unwind(|| create_tree(&fs, target));
    rustix::process::umask(old_umask);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn host(target: &Path, path: &[u8]) -> PathBuf {
    target.join(OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path)))
}

fn create_tree(fs: &FileSystem, target: &Path) {
    // 1. entries: primaries in depth-first order, then hard links.
    let mut primary_path: HashMap<InodeId, Vec<u8>> = HashMap::new();
    let mut links = Vec::new();
    let mut order = vec![(InodeId::ROOT, Vec::new())];
    fs.walk(|path, e| {
        if e.alias {
            links.push((path.to_vec(), e.inode));
            return;
        }
        primary_path.insert(e.inode, path.to_vec());
        order.push((e.inode, path.to_vec()));
        let p = host(target, path);
        let inode = fs.inode(e.inode);
        match &inode.kind {
            InodeKind::Directory(_) => std::fs::create_dir(&p).unwrap(),
            InodeKind::Regular(RegularFile::Inline(data)) => std::fs::write(&p, data).unwrap(),
            InodeKind::Regular(RegularFile::External(_)) => {
                panic!("{}: materialize needs inline content", p.display())
            }
            InodeKind::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &p).unwrap(),
            InodeKind::CharDevice(rdev) => mknod(&p, FileType::CharacterDevice, *rdev),
            InodeKind::BlockDevice(rdev) => mknod(&p, FileType::BlockDevice, *rdev),
            InodeKind::Fifo => mknod(&p, FileType::Fifo, 0),
            InodeKind::Socket => mknod(&p, FileType::Socket, 0),
        }
    });
    for (path, inode) in &links {
        std::fs::hard_link(host(target, &primary_path[inode]), host(target, path)).unwrap();
    }
    // 2. ownership, permissions, xattrs.
    for (id, path) in &order {
        let p = host(target, path);
        let inode = fs.inode(*id);
        rustix::fs::chownat(
            CWD,
            &p,
            Some(rustix::fs::Uid::from_raw(inode.stat.uid)),
            Some(rustix::fs::Gid::from_raw(inode.stat.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        if !matches!(inode.kind, InodeKind::Symlink(_)) {
            rustix::fs::chmod(&p, Mode::from_raw_mode(u32::from(inode.stat.mode))).unwrap();
        }
        for x in &inode.stat.xattrs {
            rustix::fs::lsetxattr(
                &p,
                OsStr::from_bytes(&x.name),
                &x.value,
                XattrFlags::empty(),
            )
            .unwrap_or_else(|e| panic!("{}: setxattr {:?}: {e}", p.display(), x.name));
        }
    }
    // 3. mtimes: non-directories, then directories deepest first.
    let set_time = |id: InodeId, path: &[u8]| {
        let m = fs.inode(id).stat.mtime;
        let ts = Timespec {
            tv_sec: m.sec,
            tv_nsec: i64::from(m.nsec),
        };
        rustix::fs::utimensat(
            CWD,
            host(target, path),
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    };
    let mut dirs = Vec::new();
    for (id, path) in &order {
        if fs.directory(*id).is_some() {
            dirs.push((*id, path.clone()));
        } else {
            set_time(*id, path);
        }
    }
    dirs.sort_by_key(|(_, p)| std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count()));
    for (id, path) in dirs {
        set_time(id, &path);
    }
}

fn mknod(p: &Path, ft: FileType, rdev: u32) {
    rustix::fs::mknodat(CWD, p, ft, Mode::from_raw_mode(0o600), u64::from(rdev)).unwrap();
}

/// Replaces the file `p` by a FIFO (nobody writes to it).
pub(crate) fn replace_with_fifo(p: &Path) {
    std::fs::remove_file(p).unwrap();
    mknod(p, FileType::Fifo, 0);
}
